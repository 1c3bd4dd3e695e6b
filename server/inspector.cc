#include "server/inspector.h"

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dataset.h"
#include "core/evaluation.h"
#include "core/network.h"
#include "core/network_inspection.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

// Inspect ignores labels, but DataResolver checks them against a class
// count: the widest one each source accepts (an IDX label is a byte).
int IgnoredLabelClasses(const v1::DataSpec& spec) {
  return spec.has_idx() ? 256 : std::numeric_limits<int>::max();
}

absl::Status CheckBatchStatisticsRows(BnMode mode, int64_t rows) {
  if (mode == BnMode::kBatchStatistics && rows < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BATCH_STATISTICS normalizes with the batch's own statistics and needs at least 2 "
        "rows, got ",
        rows));
  }
  return absl::OkStatus();
}

void HistogramToProto(const Histogram& histogram, v1::Histogram* proto) {
  proto->set_min(histogram.min);
  proto->set_max(histogram.max);
  proto->mutable_counts()->Add(histogram.counts.begin(), histogram.counts.end());
  proto->set_below(histogram.below);
  proto->set_above(histogram.above);
  proto->set_mean(histogram.mean);
  proto->set_std(histogram.std);
  proto->set_count(histogram.count);
}

void AddValues(const Matrix& tensor, google::protobuf::RepeatedField<float>* out) {
  out->Add(tensor.data(), tensor.data() + tensor.size());
}

v1::BnMode BnModeToProto(BnMode mode) {
  return mode == BnMode::kInference ? v1::INFERENCE : v1::BATCH_STATISTICS;
}

// An upper bound of the response's size: per hidden layer three histograms
// (a count is a varint of at most 10 bytes, six more fields of at most 11)
// and four floats per unit, and the config.
int64_t EstimateResponseBytes(const NetworkConfig& config, int bins) {
  int64_t bytes = 1024;
  for (int units : config.hidden_sizes) {
    bytes += 3 * (int64_t{bins} * 10 + 6 * 11 + 16) + 4 * (int64_t{units} * 4 + 8) + 16;
  }
  return bytes;
}

}  // namespace

absl::StatusOr<InspectQuery> Inspector::Parse(const v1::InspectRequest& request) const {
  InspectQuery query;
  switch (request.network_case()) {
    case v1::InspectRequest::kModel:
      query.network = request.model();
      break;
    case v1::InspectRequest::kUntrained: {
      const v1::NetworkConfig& proto = request.untrained().network();
      if (proto.input_size() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "untrained.network.input_size must be set (> 0), got ", proto.input_size()));
      }
      InspectQuery::Untrained untrained;
      absl::StatusOr<NetworkConfig> config = NetworkConfigFromProto(proto, 0);
      if (!config.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("untrained.network: ", config.status().message()));
      }
      untrained.config = *std::move(config);
      untrained.seed = request.untrained().seed();
      query.network = std::move(untrained);
      break;
    }
    case v1::InspectRequest::NETWORK_NOT_SET:
      return absl::InvalidArgumentError("set the network: model or untrained");
  }

  ASSIGN_OR_RETURN(query.mode, BnModeFromProto(request.bn_mode()));

  switch (request.input_case()) {
    case v1::InspectRequest::kData: {
      ASSIGN_OR_RETURN(DataSource source,
                       data_->Prepare(request.data(), IgnoredLabelClasses(request.data())));
      if (source.max_rows.has_value() && *source.max_rows < 2) {
        // An upper bound below 2: fewer than 2 rows for sure. Otherwise the
        // rows are checked once loaded.
        RETURN_IF_ERROR(CheckBatchStatisticsRows(query.mode, *source.max_rows));
      }
      query.input = std::move(source);
      break;
    }
    case v1::InspectRequest::kInputs: {
      const v1::Tensor& tensor = request.inputs();
      if (tensor.shape_size() == 2 && tensor.shape(0) > options_.max_rows) {
        return absl::ResourceExhaustedError(absl::StrCat("inputs: ", tensor.shape(0),
                                                         " rows exceed the server's maximum of ",
                                                         options_.max_rows));
      }
      absl::StatusOr<ConstMatrixMapT<float>> values = MapTensor(tensor);
      if (!values.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("inputs: ", values.status().message()));
      }
      RETURN_IF_ERROR(CheckFinite(*values, "inputs"));
      RETURN_IF_ERROR(CheckBatchStatisticsRows(query.mode, values->rows()));
      query.input.emplace<InspectQuery::InlineRows>(InspectQuery::InlineRows{*values});
      break;
    }
    case v1::InspectRequest::kRandomNormalRows: {
      const int64_t rows = request.random_normal_rows();
      if (rows <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("random_normal_rows must be positive, got ", rows));
      }
      if (rows > options_.max_rows) {
        return absl::ResourceExhaustedError(
            absl::StrCat("random_normal_rows ", rows, " exceeds the server's maximum of ",
                         options_.max_rows));
      }
      RETURN_IF_ERROR(CheckBatchStatisticsRows(query.mode, rows));
      query.input = InspectQuery::RandomNormalRows{rows, request.seed()};
      break;
    }
    case v1::InspectRequest::INPUT_NOT_SET:
      return absl::InvalidArgumentError(
          "set the input: data, inputs or random_normal_rows");
  }

  if (request.bins() != 0) query.histogram.bins = request.bins();
  if (request.has_range_min() != request.has_range_max()) {
    return absl::InvalidArgumentError(
        "set both range_min and range_max, or neither (each histogram's own range)");
  }
  if (request.has_range_min()) {
    query.histogram.range = HistogramRange{request.range_min(), request.range_max()};
  }
  RETURN_IF_ERROR(ValidateHistogramOptions(query.histogram));
  return query;
}

absl::Status Inspector::Run(const InspectQuery& query, v1::InspectResponse* response) {
  // The network: a stored version (unfolded) or a config to initialise.
  std::optional<LoadedModel> model;
  const NetworkConfig* config = nullptr;
  if (const auto* ref = std::get_if<v1::ModelRef>(&query.network)) {
    ASSIGN_OR_RETURN(model, catalog_->Load(*ref));
    config = &model->network->config();
  } else {
    config = &std::get<InspectQuery::Untrained>(query.network).config;
  }

  const int64_t response_bytes = EstimateResponseBytes(*config, query.histogram.bins);
  if (response_bytes > options_.max_response_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the inspection of ", config->hidden_sizes.size(), " hidden layers in ",
        query.histogram.bins, " bins would answer with about ", response_bytes >> 20,
        " MiB, more than the server's message limit of ", options_.max_response_bytes >> 20,
        " MiB"));
  }
  // The pass's buffers, and the rows when they are generated here.
  const auto check_pass = [&](int64_t rows, bool generated) -> absl::Status {
    int64_t bytes = EstimateForwardBytes(*config, rows);
    if (generated) {
      const int64_t input = rows * config->input_size * int64_t{sizeof(float)};
      bytes = bytes > INT64_MAX - input ? INT64_MAX : bytes + input;
    }
    if (bytes > options_.max_pass_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "inspecting ", rows, " rows in one pass needs about ", bytes >> 20,
          " MiB, over the server's limit of ", options_.max_pass_bytes >> 20,
          " MiB: inspect fewer rows"));
    }
    return absl::OkStatus();
  };

  // The rows: checked against the limits before they are loaded or made.
  std::shared_ptr<const Dataset> data;
  Matrix generated;
  std::optional<ConstMatrixMapT<float>> rows;
  if (const auto* source = std::get_if<DataSource>(&query.input)) {
    if (source->max_rows.has_value()) RETURN_IF_ERROR(check_pass(*source->max_rows, false));
    ASSIGN_OR_RETURN(data, data_->Resolve(*source, IgnoredLabelClasses(source->spec)));
    if (data->size() == 0) return absl::InvalidArgumentError("the data are empty");
    RETURN_IF_ERROR(check_pass(data->size(), false));
    RETURN_IF_ERROR(CheckBatchStatisticsRows(query.mode, data->size()));
    rows.emplace(data->features.data(), data->features.rows(), data->features.cols());
  } else if (const auto* inline_rows = std::get_if<InspectQuery::InlineRows>(&query.input)) {
    RETURN_IF_ERROR(check_pass(inline_rows->values.rows(), false));
    rows.emplace(inline_rows->values);
  } else {
    const auto& random = std::get<InspectQuery::RandomNormalRows>(query.input);
    RETURN_IF_ERROR(check_pass(random.rows, true));
    generated = RandomNormalRows(random.rows, config->input_size, random.seed);
    rows.emplace(generated.data(), generated.rows(), generated.cols());
  }
  if (rows->cols() != config->input_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the rows have ", rows->cols(), " features, the network expects ", config->input_size));
  }

  std::optional<Network<float>> untrained;
  if (const auto* spec = std::get_if<InspectQuery::Untrained>(&query.network)) {
    ASSIGN_OR_RETURN(untrained, Network<float>::Create(spec->config, spec->seed));
  }
  const Network<float>& network = model.has_value() ? *model->network : *untrained;
  ASSIGN_OR_RETURN(std::vector<LayerHistograms> layers,
                   InspectNetwork(network, *rows, query.mode, query.histogram));

  v1::InspectResponse answer;
  const std::map<std::string, Matrix> tensors =
      network.config().use_batchnorm ? network.ExportTensors() : std::map<std::string, Matrix>();
  for (const LayerHistograms& layer : layers) {
    v1::LayerInspection* out = answer.add_layers();
    out->set_layer(layer.layer);
    HistogramToProto(layer.affine_output, out->mutable_affine_output());
    if (layer.batchnorm_output.has_value()) {
      HistogramToProto(*layer.batchnorm_output, out->mutable_batchnorm_output());
    }
    HistogramToProto(layer.activation_output, out->mutable_activation_output());
    if (network.config().use_batchnorm) {
      AddValues(tensors.at(absl::StrCat("gamma", layer.layer)), out->mutable_gamma());
      AddValues(tensors.at(absl::StrCat("beta", layer.layer)), out->mutable_beta());
      AddValues(tensors.at(absl::StrCat("running_mean", layer.layer)),
                out->mutable_running_mean());
      AddValues(tensors.at(absl::StrCat("running_var", layer.layer)),
                out->mutable_running_var());
    }
  }
  *answer.mutable_network() = NetworkConfigToProto(network.config());
  if (model.has_value()) {
    answer.set_model_name(model->model_name);
    answer.set_model_version(model->version);
  }
  answer.set_num_examples(rows->rows());
  answer.set_bn_mode(BnModeToProto(query.mode));
  *response = std::move(answer);
  return absl::OkStatus();
}

absl::Status Inspector::Inspect(const v1::InspectRequest& request,
                                v1::InspectResponse* response) {
  ASSIGN_OR_RETURN(InspectQuery query, Parse(request));
  return Run(query, response);
}

}  // namespace bnserve
