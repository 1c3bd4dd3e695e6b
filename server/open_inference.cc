#include "server/open_inference.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE 754 floats expected");

// The protocol's raw contents are little-endian; so is every x86-64 host.
constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
static_assert(kLittleEndian, "raw tensor contents are read in host byte order");

absl::StatusOr<BnMode> BnModeFromParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters) {
  auto it = parameters.find(OpenInference::kBnModeParameter);
  if (it == parameters.end()) return BnMode::kInference;
  const inference::InferParameter& value = it->second;
  if (value.parameter_choice_case() == inference::InferParameter::kStringParam) {
    if (value.string_param() == "inference") return BnMode::kInference;
    if (value.string_param() == "batch_statistics") return BnMode::kBatchStatistics;
  }
  return absl::InvalidArgumentError(
      "parameter \"bn_mode\" must be the string \"inference\" or \"batch_statistics\"");
}

// The rows of the request's only input, as a [rows, cols] float matrix: a
// view of the request's own FP32 values, or `converted` holding FP64 values
// converted to float.
absl::StatusOr<ConstMatrixMapT<float>> InputRows(const inference::ModelInferRequest& request,
                                                 const Predictor& predictor, Matrix* converted) {
  if (request.inputs_size() != 1 || request.inputs(0).name() != OpenInference::kInputName) {
    std::vector<std::string> names;
    for (const auto& input : request.inputs()) names.push_back(absl::StrCat("\"", input.name(), "\""));
    return absl::InvalidArgumentError(absl::StrCat(
        "bnserve models take exactly one input, \"input\"; the request has ",
        names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  const inference::ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.shape_size() != 2 || input.shape(0) <= 0 || input.shape(1) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input \"input\" must have shape [N, features] with N, features > 0; got [",
        absl::StrJoin(input.shape(), ", "), "]"));
  }
  const int64_t rows = input.shape(0);
  const int64_t cols = input.shape(1);
  RETURN_IF_ERROR(predictor.CheckRows(rows));
  if (cols > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input \"input\" has ", cols, " features per row, more than any model"));
  }
  const int64_t count = rows * cols;  // <= max_batch * 2^31: no overflow
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", request.raw_input_contents_size(),
        " entries for 1 input"));
  }
  if (raw && input.has_contents()) {
    return absl::InvalidArgumentError(
        "input \"input\" has both contents and raw_input_contents; send one");
  }
  const std::string& datatype = input.datatype();
  if (datatype != "FP32" && datatype != "FP64") {
    return absl::InvalidArgumentError(absl::StrCat(
        "input \"input\" has datatype \"", datatype, "\"; bnserve takes FP32 (or FP64)"));
  }
  const int64_t element_bytes = datatype == "FP32" ? 4 : 8;
  if (raw) {
    const std::string& bytes = request.raw_input_contents(0);
    if (static_cast<int64_t>(bytes.size()) != count * element_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw contents of input \"input\" are ", bytes.size(), " bytes; shape [", rows, ", ",
          cols, "] of ", datatype, " needs ", count * element_bytes));
    }
    if (datatype == "FP32") {
      return ConstMatrixMapT<float>(reinterpret_cast<const float*>(bytes.data()), rows, cols);
    }
    std::vector<double> values(static_cast<size_t>(count));
    std::memcpy(values.data(), bytes.data(), bytes.size());
    *converted = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                                                Eigen::RowMajor>>(values.data(), rows, cols)
                     .cast<float>();
  } else if (datatype == "FP32") {
    const auto& values = input.contents().fp32_contents();
    if (values.size() != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input \"input\" has ", values.size(), " fp32_contents values; shape [", rows, ", ",
          cols, "] needs ", count));
    }
    return ConstMatrixMapT<float>(values.data(), rows, cols);
  } else {
    const auto& values = input.contents().fp64_contents();
    if (values.size() != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input \"input\" has ", values.size(), " fp64_contents values; shape [", rows, ", ",
          cols, "] needs ", count));
    }
    *converted = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                                                Eigen::RowMajor>>(values.data(), rows, cols)
                     .cast<float>();
  }
  return ConstMatrixMapT<float>(converted->data(), converted->rows(), converted->cols());
}

// Which outputs to return, in response order. InvalidArgument for an
// unknown or repeated name.
absl::StatusOr<std::vector<std::string>> RequestedOutputs(
    const inference::ModelInferRequest& request) {
  std::vector<std::string> names;
  if (request.outputs_size() == 0) {
    return std::vector<std::string>{OpenInference::kProbabilitiesName,
                                    OpenInference::kPredictedClassName};
  }
  for (const auto& output : request.outputs()) {
    if (output.name() != OpenInference::kProbabilitiesName &&
        output.name() != OpenInference::kPredictedClassName) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown output \"", output.name(), "\"; bnserve models have \"",
          OpenInference::kProbabilitiesName, "\" and \"", OpenInference::kPredictedClassName,
          "\""));
    }
    for (const std::string& seen : names) {
      if (seen == output.name()) {
        return absl::InvalidArgumentError(
            absl::StrCat("output \"", output.name(), "\" is requested twice"));
      }
    }
    names.push_back(output.name());
  }
  return names;
}

void AddTensorMetadata(const std::string& name, const std::string& datatype,
                       std::vector<int64_t> shape,
                       google::protobuf::RepeatedPtrField<
                           inference::ModelMetadataResponse::TensorMetadata>* out) {
  inference::ModelMetadataResponse::TensorMetadata* tensor = out->Add();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  tensor->mutable_shape()->Add(shape.begin(), shape.end());
}

}  // namespace

absl::StatusOr<v1::ModelRef> OpenInference::ModelRefFromV2(const std::string& name,
                                                           const std::string& version) {
  RETURN_IF_ERROR(ModelCatalog::ValidateModelName(name));
  v1::ModelRef ref;
  ref.set_name(name);
  if (version.empty()) return ref;
  if (absl::ascii_isdigit(version[0])) {
    int number = 0;
    if (!absl::SimpleAtoi(version, &number) || number <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model version \"", version, "\" must be a positive version number or an alias"));
    }
    ref.set_version(number);
    return ref;
  }
  RETURN_IF_ERROR(ModelCatalog::ValidateAlias(version));
  ref.set_alias(version);
  return ref;
}

bool OpenInference::ServerReady() {
  if (options_.registry_ready && !options_.registry_ready()) return false;
  if (options_.default_model.empty()) return true;
  v1::ModelRef ref;
  ref.set_name(options_.default_model);
  absl::StatusOr<int> version = catalog_->Resolve(ref);
  if (!version.ok()) return false;  // not trained yet, or the store failed
  if (catalog_->IsReady(ref.name(), *version)) return true;
  catalog_->LoadInBackground(ref.name(), *version);
  return false;
}

absl::StatusOr<bool> OpenInference::ModelReady(const std::string& name,
                                               const std::string& version) {
  ASSIGN_OR_RETURN(v1::ModelRef ref, ModelRefFromV2(name, version));
  ASSIGN_OR_RETURN(int number, catalog_->Resolve(ref));
  if (catalog_->IsReady(name, number)) return true;
  catalog_->LoadInBackground(name, number);
  return false;
}

void OpenInference::ServerMetadata(inference::ServerMetadataResponse* response) const {
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  response->add_extensions("binary_tensor_data");
}

absl::Status OpenInference::ModelMetadata(const inference::ModelMetadataRequest& request,
                                          inference::ModelMetadataResponse* response) {
  ASSIGN_OR_RETURN(v1::ModelRef ref, ModelRefFromV2(request.name(), request.version()));
  ASSIGN_OR_RETURN(v1::ModelVersion version, catalog_->Get(ref, /*include_tensors=*/false));
  ASSIGN_OR_RETURN(v1::Model model, catalog_->GetModel(request.name()));
  response->set_name(model.name());
  for (int number : model.versions()) response->add_versions(std::to_string(number));
  response->set_platform(kPlatform);
  ASSIGN_OR_RETURN(NetworkConfig config, NetworkConfigFromProto(version.network(), /*default_input_size=*/0));
  AddTensorMetadata(kInputName, "FP32", {-1, config.input_size}, response->mutable_inputs());
  AddTensorMetadata(kProbabilitiesName, "FP32", {-1, config.output_size},
                    response->mutable_outputs());
  AddTensorMetadata(kPredictedClassName, "INT32", {-1}, response->mutable_outputs());
  auto& properties = *response->mutable_properties();
  properties["version"] = std::to_string(version.version());
  properties["batch_normalization"] = config.use_batchnorm ? "true" : "false";
  properties["hidden_sizes"] = absl::StrJoin(config.hidden_sizes, ",");
  properties["bn_modes"] = "inference,batch_statistics";
  properties["max_batch_size"] = std::to_string(predictor_->max_batch());
  for (const auto& [alias, target] : model.aliases()) {
    if (target == version.version()) properties[absl::StrCat("alias.", alias)] = "true";
  }
  return absl::OkStatus();
}

absl::Status OpenInference::ModelInfer(const inference::ModelInferRequest& request,
                                       inference::ModelInferResponse* response,
                                       InferenceProtocol protocol, absl::Time received) {
  const absl::Time start = received == absl::InfinitePast() ? absl::Now() : received;
  absl::StatusOr<Prediction> prediction = RunModelInfer(request, response);
  if (metrics_ == nullptr) return prediction.status();
  if (!prediction.ok()) {
    RecordRefused(request.model_name(), request.model_version(), protocol, prediction.status(),
                  start);
    return prediction.status();
  }
  InferenceRecord record;
  record.model = request.model_name();
  record.version = prediction->version;
  record.protocol = protocol;
  record.bn_mode = BnModeFromParameters(request.parameters()).value_or(BnMode::kInference);
  record.rows = prediction->probabilities.rows();
  record.compute_duration = prediction->compute_duration;
  record.request_duration = absl::Now() - start;
  metrics_->RecordInference(record);
  return absl::OkStatus();
}

int OpenInference::ResolvedVersion(const std::string& name, const std::string& version) {
  absl::StatusOr<v1::ModelRef> ref = ModelRefFromV2(name, version);
  if (!ref.ok()) return 0;
  return catalog_->Resolve(*ref).value_or(0);
}

void OpenInference::RecordRefused(const std::string& name, const std::string& version,
                                  InferenceProtocol protocol, const absl::Status& status,
                                  absl::Time received) {
  if (metrics_ == nullptr) return;
  InferenceRecord record;
  record.model = name;
  record.version = ResolvedVersion(name, version);
  record.protocol = protocol;
  record.status = status.ok() ? absl::UnknownError("refused without a status") : status;
  record.request_duration = absl::Now() - received;
  metrics_->RecordInference(record);
}

absl::StatusOr<Prediction> OpenInference::RunModelInfer(
    const inference::ModelInferRequest& request, inference::ModelInferResponse* response) {
  ASSIGN_OR_RETURN(v1::ModelRef ref, ModelRefFromV2(request.model_name(), request.model_version()));
  ASSIGN_OR_RETURN(BnMode mode, BnModeFromParameters(request.parameters()));
  ASSIGN_OR_RETURN(std::vector<std::string> outputs, RequestedOutputs(request));
  Matrix converted;
  ASSIGN_OR_RETURN(ConstMatrixMapT<float> rows, InputRows(request, *predictor_, &converted));
  ASSIGN_OR_RETURN(Prediction prediction, predictor_->Predict(ref, rows, mode));

  response->set_model_name(prediction.model_name);
  response->set_model_version(std::to_string(prediction.version));
  response->set_id(request.id());
  const bool raw = request.raw_input_contents_size() > 0;
  const Matrix& probabilities = prediction.probabilities;
  const std::vector<int32_t>& classes = prediction.predicted_classes;
  for (const std::string& name : outputs) {
    inference::ModelInferResponse::InferOutputTensor* tensor = response->add_outputs();
    tensor->set_name(name);
    if (name == kProbabilitiesName) {
      tensor->set_datatype("FP32");
      tensor->add_shape(probabilities.rows());
      tensor->add_shape(probabilities.cols());
      if (raw) {
        response->add_raw_output_contents()->assign(
            reinterpret_cast<const char*>(probabilities.data()),
            sizeof(float) * static_cast<size_t>(probabilities.size()));
      } else {
        tensor->mutable_contents()->mutable_fp32_contents()->Add(
            probabilities.data(), probabilities.data() + probabilities.size());
      }
    } else {
      tensor->set_datatype("INT32");
      tensor->add_shape(static_cast<int64_t>(classes.size()));
      if (raw) {
        response->add_raw_output_contents()->assign(
            reinterpret_cast<const char*>(classes.data()), sizeof(int32_t) * classes.size());
      } else {
        tensor->mutable_contents()->mutable_int_contents()->Add(classes.begin(), classes.end());
      }
    }
  }
  return prediction;
}

}  // namespace bnserve
