// STOPGAP for the http-rest branch: the lead's open_inference.cc replaces
// this file at merge (take main's version). It implements the header's
// contract closely enough for the REST routes and their tests: readiness is
// "the version resolves and loads" (the catalog has no IsReady yet).
#include "server/open_inference.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

absl::StatusOr<BnMode> BnModeFromParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters) {
  auto it = parameters.find(OpenInference::kBnModeParameter);
  if (it == parameters.end()) return BnMode::kInference;
  if (it->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
    return absl::InvalidArgumentError("parameter bn_mode must be a string");
  }
  if (it->second.string_param() == "inference") return BnMode::kInference;
  if (it->second.string_param() == "batch_statistics") return BnMode::kBatchStatistics;
  return absl::InvalidArgumentError(absl::StrCat(
      "parameter bn_mode is \"", it->second.string_param(),
      "\"; expected \"inference\" or \"batch_statistics\""));
}

}  // namespace

absl::StatusOr<v1::ModelRef> OpenInference::ModelRefFromV2(const std::string& name,
                                                           const std::string& version) {
  RETURN_IF_ERROR(ModelCatalog::ValidateModelName(name));
  v1::ModelRef ref;
  ref.set_name(name);
  if (version.empty()) return ref;
  if (std::all_of(version.begin(), version.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    int number = 0;
    if (!absl::SimpleAtoi(version, &number) || number <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model version \"", version, "\" is not a positive version number"));
    }
    ref.set_version(number);
    return ref;
  }
  RETURN_IF_ERROR(ModelCatalog::ValidateAlias(version));
  ref.set_alias(version);
  return ref;
}

bool OpenInference::ServerReady() {
  if (options_.default_model.empty()) return true;
  v1::ModelRef ref;
  ref.set_name(options_.default_model);
  return catalog_->Load(ref).ok();
}

absl::StatusOr<bool> OpenInference::ModelReady(const std::string& name,
                                               const std::string& version) {
  ASSIGN_OR_RETURN(v1::ModelRef ref, ModelRefFromV2(name, version));
  RETURN_IF_ERROR(catalog_->Resolve(ref).status());
  return catalog_->Load(ref).ok();
}

void OpenInference::ServerMetadata(inference::ServerMetadataResponse* response) const {
  response->set_name("bnserve");
  response->set_version("0.1.0");
  response->add_extensions("binary_tensor_data");
}

absl::Status OpenInference::ModelMetadata(const inference::ModelMetadataRequest& request,
                                          inference::ModelMetadataResponse* response) {
  ASSIGN_OR_RETURN(v1::ModelRef ref, ModelRefFromV2(request.name(), request.version()));
  ASSIGN_OR_RETURN(LoadedModel loaded, catalog_->Load(ref));
  ASSIGN_OR_RETURN(std::vector<v1::Model> models, catalog_->ListModels());
  response->set_name(loaded.model_name);
  for (const v1::Model& model : models) {
    if (model.name() != loaded.model_name) continue;
    for (int v : model.versions()) response->add_versions(absl::StrCat(v));
  }
  response->set_platform(kPlatform);
  auto* input = response->add_inputs();
  input->set_name(kInputName);
  input->set_datatype("FP32");
  input->add_shape(-1);
  input->add_shape(loaded.network->config().input_size);
  auto* probabilities = response->add_outputs();
  probabilities->set_name(kProbabilitiesName);
  probabilities->set_datatype("FP32");
  probabilities->add_shape(-1);
  probabilities->add_shape(loaded.network->config().output_size);
  auto* predicted = response->add_outputs();
  predicted->set_name(kPredictedClassName);
  predicted->set_datatype("INT32");
  predicted->add_shape(-1);
  return absl::OkStatus();
}

absl::Status OpenInference::ModelInfer(const inference::ModelInferRequest& request,
                                       inference::ModelInferResponse* response) {
  ASSIGN_OR_RETURN(v1::ModelRef ref, ModelRefFromV2(request.model_name(), request.model_version()));
  ASSIGN_OR_RETURN(BnMode mode, BnModeFromParameters(request.parameters()));
  if (request.inputs_size() != 1 || request.inputs(0).name() != kInputName) {
    return absl::InvalidArgumentError("the request needs exactly one input, \"input\"");
  }
  const auto& input = request.inputs(0);
  if (input.shape_size() != 2) {
    return absl::InvalidArgumentError("input shape must be [rows, features]");
  }
  const int64_t rows = input.shape(0);
  const int64_t features = input.shape(1);
  RETURN_IF_ERROR(predictor_->CheckRows(rows));
  if (rows < 0 || features < 0 || (features > 0 && rows > INT64_MAX / features)) {
    return absl::InvalidArgumentError("input shape is out of range");
  }
  const int64_t count = rows * features;
  const bool raw = request.raw_input_contents_size() > 0;
  std::vector<float> values;
  if (input.datatype() == "FP32") {
    if (raw) {
      const std::string& bytes = request.raw_input_contents(0);
      if (static_cast<int64_t>(bytes.size()) != count * 4) {
        return absl::InvalidArgumentError("raw input size does not match the shape");
      }
      values.resize(static_cast<size_t>(count));
      std::memcpy(values.data(), bytes.data(), bytes.size());
    } else {
      if (input.contents().fp32_contents_size() != count) {
        return absl::InvalidArgumentError("input value count does not match the shape");
      }
      values.assign(input.contents().fp32_contents().begin(),
                    input.contents().fp32_contents().end());
    }
  } else if (input.datatype() == "FP64") {
    std::vector<double> doubles;
    if (raw) {
      const std::string& bytes = request.raw_input_contents(0);
      if (static_cast<int64_t>(bytes.size()) != count * 8) {
        return absl::InvalidArgumentError("raw input size does not match the shape");
      }
      doubles.resize(static_cast<size_t>(count));
      std::memcpy(doubles.data(), bytes.data(), bytes.size());
    } else {
      if (input.contents().fp64_contents_size() != count) {
        return absl::InvalidArgumentError("input value count does not match the shape");
      }
      doubles.assign(input.contents().fp64_contents().begin(),
                     input.contents().fp64_contents().end());
    }
    values.assign(doubles.begin(), doubles.end());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("input datatype ", input.datatype(), " is not FP32 or FP64"));
  }
  ConstMatrixMapT<float> x(values.data(), rows, features);
  ASSIGN_OR_RETURN(Prediction prediction, predictor_->Predict(ref, x, mode));

  bool want_probabilities = request.outputs_size() == 0;
  bool want_classes = request.outputs_size() == 0;
  for (const auto& output : request.outputs()) {
    if (output.name() == kProbabilitiesName) {
      want_probabilities = true;
    } else if (output.name() == kPredictedClassName) {
      want_classes = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown output \"", output.name(), "\""));
    }
  }
  response->set_model_name(prediction.model_name);
  response->set_model_version(absl::StrCat(prediction.version));
  response->set_id(request.id());
  const Matrix& p = prediction.probabilities;
  if (want_probabilities) {
    auto* out = response->add_outputs();
    out->set_name(kProbabilitiesName);
    out->set_datatype("FP32");
    out->add_shape(p.rows());
    out->add_shape(p.cols());
    if (raw) {
      response->add_raw_output_contents(
          std::string(reinterpret_cast<const char*>(p.data()), p.size() * sizeof(float)));
    } else {
      out->mutable_contents()->mutable_fp32_contents()->Add(p.data(), p.data() + p.size());
    }
  }
  if (want_classes) {
    auto* out = response->add_outputs();
    out->set_name(kPredictedClassName);
    out->set_datatype("INT32");
    out->add_shape(static_cast<int64_t>(prediction.predicted_classes.size()));
    const std::vector<int32_t>& classes = prediction.predicted_classes;
    if (raw) {
      response->add_raw_output_contents(std::string(
          reinterpret_cast<const char*>(classes.data()), classes.size() * sizeof(int32_t)));
    } else {
      out->mutable_contents()->mutable_int_contents()->Add(classes.begin(), classes.end());
    }
  }
  return absl::OkStatus();
}

}  // namespace bnserve
