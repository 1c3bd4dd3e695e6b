#include "server/inference_service.h"

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "core/evaluation.h"
#include "core/status_macros.h"
#include "server/exception_status.h"
#include "server/grpc_status_util.h"
#include "server/proto_convert.h"

namespace bnserve {

InferenceServiceImpl::~InferenceServiceImpl() {
  // Evaluate threads are detached: none may outlive the members they use.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* running) { return *running == 0; }, &running_evaluations_));
}

absl::Status InferenceServiceImpl::CheckRows(int64_t rows) const {
  return predictor_.CheckRows(rows);
}

absl::StatusOr<Prediction> InferenceServiceImpl::RunPredict(
    const v1::PredictRequest& request) const {
  ASSIGN_OR_RETURN(BnMode mode, BnModeFromProto(request.bn_mode()));
  if (request.inputs().shape_size() == 2) RETURN_IF_ERROR(CheckRows(request.inputs().shape(0)));
  ASSIGN_OR_RETURN(ConstMatrixMapT<float> inputs, MapTensor(request.inputs()));
  return predictor_.Predict(request.model(), inputs, mode);
}

absl::Status InferenceServiceImpl::DoPredict(const v1::PredictRequest& request,
                                             v1::PredictResponse* response) {
  const absl::Time start = absl::Now();
  absl::StatusOr<Prediction> prediction = RunPredict(request);
  InferenceRecord record;
  record.protocol = InferenceProtocol::kV1Grpc;
  record.model = request.model().name();
  record.bn_mode = BnModeFromProto(request.bn_mode()).value_or(BnMode::kInference);
  if (prediction.ok()) {
    MatrixToTensor(prediction->probabilities, response->mutable_probabilities());
    response->mutable_predicted_classes()->Add(prediction->predicted_classes.begin(),
                                               prediction->predicted_classes.end());
    response->set_model_name(prediction->model_name);
    response->set_model_version(prediction->version);
    record.version = prediction->version;
    record.rows = prediction->probabilities.rows();
    record.compute_duration = prediction->compute_duration;
  } else {
    record.status = prediction.status();
    // The version the request names, to count the failure under; 0 if none.
    if (metrics_ != nullptr) record.version = catalog_->Resolve(request.model()).value_or(0);
  }
  record.request_duration = absl::Now() - start;
  if (metrics_ != nullptr) metrics_->RecordInference(record);
  return record.status;
}

absl::Status InferenceServiceImpl::DoEvaluate(const v1::EvaluateRequest& request,
                                              v1::EvaluateResponse* response) {
  ASSIGN_OR_RETURN(BnMode mode, BnModeFromProto(request.bn_mode()));
  if (request.data().has_inline_data() &&
      request.data().inline_data().features().shape_size() == 2) {
    RETURN_IF_ERROR(CheckRows(request.data().inline_data().features().shape(0)));
  }
  ASSIGN_OR_RETURN(LoadedModel model, catalog_->Load(request.model()));
  const int num_classes = model.network->config().output_size;
  ASSIGN_OR_RETURN(std::shared_ptr<const Dataset> data, data_->Resolve(request.data(), num_classes));
  // The answer carries a classes x classes matrix of counts (packed
  // varints, each at most as long as the row count's).
  const int64_t response_bytes =
      int64_t{num_classes} * num_classes *
          static_cast<int64_t>(google::protobuf::io::CodedOutputStream::VarintSize64(
              static_cast<uint64_t>(data->size()))) +
      int64_t{num_classes} * int64_t{sizeof(double)};
  if (response_bytes > options_.max_response_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the evaluation of a ", num_classes, "-class model would answer with ",
        response_bytes >> 20, " MiB, more than the server's message limit of ",
        options_.max_response_bytes >> 20, " MiB"));
  }
  EvaluationOptions options;
  options.mode = mode;
  options.slice_rows = options_.evaluation_slice_rows;
  options.max_pass_bytes = options_.max_evaluation_bytes;
  // The stored network, not its BatchNorm fold: the loss's weight-decay term
  // is of the trained weights (INFERENCE accuracy equals the fold's to rounding).
  ASSIGN_OR_RETURN(Evaluation evaluation, EvaluateNetwork(*model.network, *data, options));
  response->set_loss(evaluation.loss);
  response->set_accuracy(evaluation.accuracy);
  response->mutable_per_class_accuracy()->Add(evaluation.per_class_accuracy.begin(),
                                              evaluation.per_class_accuracy.end());
  response->mutable_confusion_matrix()->Add(evaluation.confusion.begin(),
                                            evaluation.confusion.end());
  response->set_num_classes(evaluation.num_classes);
  response->set_num_examples(evaluation.num_examples);
  response->set_model_name(model.model_name);
  response->set_model_version(model.version);
  return absl::OkStatus();
}

absl::Status InferenceServiceImpl::DoInspect(const v1::InspectRequest& request,
                                             v1::InspectResponse* response) {
  return inspector_.Inspect(request, response);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Predict(grpc::CallbackServerContext* context,
                                                        const v1::PredictRequest* request,
                                                        v1::PredictResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.InferenceService/Predict");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, DoPredict(*request, response));
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Evaluate(grpc::CallbackServerContext* context,
                                                         const v1::EvaluateRequest* request,
                                                         v1::EvaluateResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.InferenceService/Evaluate");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  // An evaluation may load a built-in split and run a forward pass over tens
  // of thousands of rows: seconds. It runs on its own thread so that no gRPC
  // callback thread is held.
  return RunOffThread(context, [this, request, response] {
    return StatusFromExceptions("Evaluate", [&] { return DoEvaluate(*request, response); });
  });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Inspect(grpc::CallbackServerContext* context,
                                                        const v1::InspectRequest* request,
                                                        v1::InspectResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.InferenceService/Inspect");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  // Like an evaluation, an inspection may load a built-in split.
  return RunOffThread(context, [this, request, response] {
    return StatusFromExceptions("Inspect", [&] { return DoInspect(*request, response); });
  });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::RunOffThread(
    grpc::CallbackServerContext* context, std::function<absl::Status()> work) {
  // `request` and `response` live until Finish; the destructor waits for
  // every running thread to release its slot.
  {
    absl::MutexLock lock(&mu_);
    if (running_evaluations_ >= options_.max_concurrent_evaluations) {
      return FinishUnary(context, absl::ResourceExhaustedError(absl::StrCat(
                                      "too many concurrent evaluations and inspections (the "
                                      "server runs at most ",
                                      options_.max_concurrent_evaluations, "); retry later")));
    }
    ++running_evaluations_;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::thread([this, work = std::move(work), reactor] {
    const absl::Status status = work();
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
