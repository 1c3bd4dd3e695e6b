#include "server/inference_service.h"

#include <algorithm>
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

InferenceServiceImpl::~InferenceServiceImpl() {
  // Evaluate threads are detached: none may outlive the members they use.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* running) { return *running == 0; }, &running_evaluations_));
}

int64_t InferenceServiceImpl::EstimateForwardBytes(const NetworkConfig& network,
                                                   int64_t rows) {
  int64_t widest = network.output_size;
  for (int size : network.hidden_sizes) widest = std::max<int64_t>(widest, size);
  // A forward pass (Network::Predict) holds three matrices of its widest
  // layer; the probabilities make a fourth.
  const int64_t floats = 4 * widest;
  if (rows > 0 && floats > INT64_MAX / static_cast<int64_t>(sizeof(float)) / rows) {
    return INT64_MAX;
  }
  return rows * floats * static_cast<int64_t>(sizeof(float));
}

absl::Status InferenceServiceImpl::CheckRows(int64_t rows) const {
  if (rows > options_.max_batch) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", rows, " rows exceeds the server's maximum of ", options_.max_batch));
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
  // Inference treats rows independently: slices give the result of one pass
  // with a bounded working set. Batch statistics are those of the whole set.
  const int64_t n_rows = data->size();
  const int64_t slice_rows =
      mode == BnMode::kInference ? std::max(1, options_.evaluation_slice_rows) : n_rows;
  const int64_t pass_rows = std::min(n_rows, slice_rows);
  const int64_t pass_bytes = EstimateForwardBytes(model.network->config(), pass_rows);
  if (pass_bytes > options_.max_evaluation_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "evaluating ", pass_rows, " rows in one pass needs about ", pass_bytes >> 20,
        " MiB, over the server's limit of ", options_.max_evaluation_bytes >> 20,
        " MiB", mode == BnMode::kBatchStatistics
                    ? " (BATCH_STATISTICS uses the whole data set as one batch: evaluate "
                      "fewer rows or use INFERENCE)"
                    : ""));
  }

  std::vector<int64_t> confusion(static_cast<size_t>(num_classes) * num_classes, 0);
  std::vector<int64_t> per_class_total(num_classes, 0);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < n_rows; start += slice_rows) {
    const Eigen::Index rows = static_cast<Eigen::Index>(std::min(slice_rows, n_rows - start));
    ASSIGN_OR_RETURN(Matrix probabilities, model.network->PredictProbabilities(
                                               data->features.middleRows(start, rows), mode));
    for (Eigen::Index r = 0; r < rows; ++r) {
      Eigen::Index predicted = 0;
      probabilities.row(r).maxCoeff(&predicted);
      const int label = data->labels(start + r);
      // The book's cross_entropy_error: -log(p + 1e-7).
      loss_sum -= std::log(static_cast<double>(probabilities(r, label)) + 1e-7);
      ++confusion[static_cast<size_t>(label) * num_classes + predicted];
      ++per_class_total[label];
      if (predicted == label) ++correct;
    }
  }
  const double n = static_cast<double>(n_rows);
  response->set_loss(loss_sum / n);
  response->set_accuracy(correct / n);
  for (int c = 0; c < num_classes; ++c) {
    const int64_t total = per_class_total[c];
    response->add_per_class_accuracy(
        total == 0 ? 0.0 : static_cast<double>(confusion[static_cast<size_t>(c) * num_classes + c]) / total);
  }
  response->mutable_confusion_matrix()->Add(confusion.begin(), confusion.end());
  response->set_num_classes(num_classes);
  response->set_num_examples(n_rows);
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
  // destructor waits for every running thread to release its slot.
  {
    absl::MutexLock lock(&mu_);
    if (running_evaluations_ >= options_.max_concurrent_evaluations) {
      return FinishUnary(context, absl::ResourceExhaustedError(absl::StrCat(
                                      "too many concurrent evaluations (the server runs at most ",
                                      options_.max_concurrent_evaluations, "); retry later")));
    }
    ++running_evaluations_;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::thread([this, request, response, reactor] {
    const absl::Status status = DoEvaluate(*request, response);
    {
      absl::MutexLock lock(&mu_);
      --running_evaluations_;
    }
    // The destructor may run from here on: only the reactor (owned by gRPC,
    // which waits for Finish) is touched. Releasing the slot first lets a
    // client that got this answer start its next Evaluate at once.
    reactor->Finish(ToGrpcStatus(status));
  }).detach();
  return reactor;
}

}  // namespace bnserve
