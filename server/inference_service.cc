#include "server/inference_service.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

// The network's input size and BN use, checked against a batch.
absl::Status CheckBatch(const Network<float>& network, Eigen::Index rows, Eigen::Index features,
                        BnMode mode) {
  if (features != network.config().input_size) {
    return absl::InvalidArgumentError(absl::StrCat("the model expects ",
                                                   network.config().input_size,
                                                   " features per row, got ", features));
  }
  if (mode == BnMode::kBatchStatistics && rows < 2 && network.config().use_batchnorm) {
    return absl::InvalidArgumentError(
        "BATCH_STATISTICS needs at least 2 rows (the statistics of one row are degenerate)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status InferenceServiceImpl::CheckRows(int64_t rows) const {
  if (rows > max_batch_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", rows, " rows exceeds the server's maximum of ", max_batch_));
  }
  return absl::OkStatus();
}

absl::Status InferenceServiceImpl::DoPredict(const v1::PredictRequest& request,
                                             v1::PredictResponse* response) {
  ASSIGN_OR_RETURN(BnMode mode, BnModeFromProto(request.bn_mode()));
  if (request.inputs().shape_size() == 2) RETURN_IF_ERROR(CheckRows(request.inputs().shape(0)));
  ASSIGN_OR_RETURN(ConstMatrixMapT<float> inputs, MapTensor(request.inputs()));
  RETURN_IF_ERROR(CheckFinite(inputs, "inputs"));
  ASSIGN_OR_RETURN(LoadedModel model, registry_->Load(request.model()));
  RETURN_IF_ERROR(CheckBatch(*model.network, inputs.rows(), inputs.cols(), mode));
  ASSIGN_OR_RETURN(Matrix probabilities, model.network->PredictProbabilities(inputs, mode));
  MatrixToTensor(probabilities, response->mutable_probabilities());
  response->mutable_predicted_classes()->Reserve(static_cast<int>(probabilities.rows()));
  for (Eigen::Index r = 0; r < probabilities.rows(); ++r) {
    Eigen::Index best = 0;
    probabilities.row(r).maxCoeff(&best);
    response->add_predicted_classes(static_cast<int32_t>(best));
  }
  response->set_model_name(model.model_name);
  response->set_model_version(model.version);
  return absl::OkStatus();
}

absl::Status InferenceServiceImpl::DoEvaluate(const v1::EvaluateRequest& request,
                                              v1::EvaluateResponse* response) {
  ASSIGN_OR_RETURN(BnMode mode, BnModeFromProto(request.bn_mode()));
  if (request.data().has_inline_data() &&
      request.data().inline_data().features().shape_size() == 2) {
    RETURN_IF_ERROR(CheckRows(request.data().inline_data().features().shape(0)));
  }
  ASSIGN_OR_RETURN(LoadedModel model, registry_->Load(request.model()));
  const int num_classes = model.network->config().output_size;
  ASSIGN_OR_RETURN(std::shared_ptr<const Dataset> data, data_->Resolve(request.data(), num_classes));
  if (data->size() == 0) return absl::InvalidArgumentError("the evaluation data are empty");
  RETURN_IF_ERROR(CheckBatch(*model.network, data->size(), data->feature_size(), mode));
  ASSIGN_OR_RETURN(Matrix probabilities,
                   model.network->PredictProbabilities(data->features, mode));

  std::vector<int64_t> confusion(static_cast<size_t>(num_classes) * num_classes, 0);
  std::vector<int64_t> per_class_total(num_classes, 0);
  double loss_sum = 0;
  int64_t correct = 0;
  for (Eigen::Index r = 0; r < probabilities.rows(); ++r) {
    Eigen::Index predicted = 0;
    probabilities.row(r).maxCoeff(&predicted);
    const int label = data->labels(r);
    // The book's cross_entropy_error: -log(p + 1e-7).
    loss_sum -= std::log(static_cast<double>(probabilities(r, label)) + 1e-7);
    ++confusion[static_cast<size_t>(label) * num_classes + predicted];
    ++per_class_total[label];
    if (predicted == label) ++correct;
  }
  const double n = static_cast<double>(probabilities.rows());
  response->set_loss(loss_sum / n);
  response->set_accuracy(correct / n);
  for (int c = 0; c < num_classes; ++c) {
    const int64_t total = per_class_total[c];
    response->add_per_class_accuracy(
        total == 0 ? 0.0 : static_cast<double>(confusion[static_cast<size_t>(c) * num_classes + c]) / total);
  }
  response->mutable_confusion_matrix()->Add(confusion.begin(), confusion.end());
  response->set_num_classes(num_classes);
  response->set_num_examples(static_cast<int64_t>(probabilities.rows()));
  response->set_model_name(model.model_name);
  response->set_model_version(model.version);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Predict(grpc::CallbackServerContext* context,
                                                        const v1::PredictRequest* request,
                                                        v1::PredictResponse* response) {
  return FinishUnary(context, DoPredict(*request, response));
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Evaluate(grpc::CallbackServerContext* context,
                                                         const v1::EvaluateRequest* request,
                                                         v1::EvaluateResponse* response) {
  // An evaluation may load a built-in split and run a forward pass over tens
  // of thousands of rows: seconds. It runs on its own thread so that no gRPC
  // callback thread is held. `request` and `response` live until Finish; the
  // service outlives every call (the server drains calls before it goes).
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::thread([this, request, response, reactor] {
    reactor->Finish(ToGrpcStatus(DoEvaluate(*request, response)));
  }).detach();
  return reactor;
}

}  // namespace bnserve
