#include "server/grpc_audit_interceptor.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bnserve/v1/model_registry.pb.h"
#include "bnserve/v1/training_service.pb.h"
#include "core/logging.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/interceptor.h"
#include "server/access_policy.h"

namespace bnserve {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr size_t kMaxLoggedNameBytes = 128;

// A client's string, quoted, cut and escaped for one log line.
std::string Quoted(absl::string_view name) {
  const bool cut = name.size() > kMaxLoggedNameBytes;
  return absl::StrCat("\"", absl::CEscape(name.substr(0, kMaxLoggedNameBytes)),
                      cut ? "...\"" : "\"");
}

std::string ModelRefText(const v1::ModelRef& ref) {
  std::string text = absl::StrCat("model=", Quoted(ref.name()));
  if (ref.has_version()) absl::StrAppend(&text, " version=", ref.version());
  if (ref.has_alias()) absl::StrAppend(&text, " alias=", Quoted(ref.alias()));
  return text;
}

// What the request names. `message` is the deserialized request of `method`.
std::string RequestSubject(absl::string_view method, const void* message) {
  if (message == nullptr) return "";
  if (method == "/bnserve.v1.TrainingService/Train") {
    return absl::StrCat("model=",
                        Quoted(static_cast<const v1::TrainRequest*>(message)->model_name()));
  }
  if (method == "/bnserve.v1.TrainingService/CancelJob") {
    return absl::StrCat("job=",
                        Quoted(static_cast<const v1::CancelJobRequest*>(message)->job_id()));
  }
  if (method == "/bnserve.v1.TrainingService/StartSweep") {
    const auto* request = static_cast<const v1::StartSweepRequest*>(message);
    return absl::StrCat("model=", Quoted(request->base().model_name()));
  }
  if (method == "/bnserve.v1.TrainingService/CancelSweep") {
    return absl::StrCat("sweep=",
                        Quoted(static_cast<const v1::CancelSweepRequest*>(message)->sweep_id()));
  }
  if (method == "/bnserve.v1.ModelRegistry/DeleteModelVersion") {
    const auto* request = static_cast<const v1::DeleteModelVersionRequest*>(message);
    return absl::StrCat("model=", Quoted(request->model_name()), " version=", request->version());
  }
  if (method == "/bnserve.v1.ModelRegistry/SetAlias") {
    const auto* request = static_cast<const v1::SetAliasRequest*>(message);
    return absl::StrCat("model=", Quoted(request->model_name()),
                        " alias=", Quoted(request->alias()), " version=", request->version());
  }
  if (method == "/bnserve.v1.ModelRegistry/DeleteAlias") {
    const auto* request = static_cast<const v1::DeleteAliasRequest*>(message);
    return absl::StrCat("model=", Quoted(request->model_name()),
                        " alias=", Quoted(request->alias()));
  }
  if (method == "/bnserve.v1.ModelRegistry/ExportModel") {
    return ModelRefText(static_cast<const v1::ExportModelRequest*>(message)->model());
  }
  return "";  // ImportModel: raw bytes, named by its response
}

// What the response adds: Train's job, StartSweep's sweep, ImportModel's
// stored version.
std::string ResponseSubject(absl::string_view method, const void* message) {
  if (message == nullptr) return "";
  if (method == "/bnserve.v1.TrainingService/Train") {
    return absl::StrCat("job=", Quoted(static_cast<const v1::Job*>(message)->job_id()));
  }
  if (method == "/bnserve.v1.TrainingService/StartSweep") {
    return absl::StrCat("sweep=", Quoted(static_cast<const v1::Sweep*>(message)->sweep_id()));
  }
  if (method == "/bnserve.v1.ModelRegistry/ImportModel") {
    grpc::ByteBuffer copy(*static_cast<const grpc::ByteBuffer*>(message));
    v1::ModelVersion stored;
    if (!grpc::SerializationTraits<v1::ModelVersion>::Deserialize(&copy, &stored).ok()) {
      return "";
    }
    return absl::StrCat("model=", Quoted(stored.model_name()), " version=", stored.version());
  }
  return "";
}

class GrpcAuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcAuditInterceptor(const GrpcAuthorizer* authorizer, grpc::experimental::ServerRpcInfo* info)
      : authorizer_(authorizer), info_(info), method_(info->method()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      grpc::ServerContextBase* context = info_->server_context();
      caller_ = authorizer_ != nullptr ? authorizer_->CallerName(*context) : "anonymous";
      peer_ = context->peer();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      request_subject_ = RequestSubject(method_, methods->GetRecvMessage());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      response_subject_ = ResponseSubject(method_, methods->GetSendMessage());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      std::string subject = request_subject_;
      if (status.ok() && !response_subject_.empty()) {
        absl::StrAppend(&subject, subject.empty() ? "" : " ", response_subject_);
      }
      BNSERVE_LOG(INFO) << "audit: caller=" << caller_ << " peer=" << peer_ << " method=" << method_
                        << (subject.empty() ? "" : " ") << subject << " result="
                        << absl::StatusCodeToString(
                               static_cast<absl::StatusCode>(status.error_code()));
    }
    methods->Proceed();
  }

 private:
  const GrpcAuthorizer* const authorizer_;
  grpc::experimental::ServerRpcInfo* const info_;
  const std::string method_;
  std::string caller_ = "anonymous";
  std::string peer_;
  std::string request_subject_;
  std::string response_subject_;
};

}  // namespace

grpc::experimental::Interceptor* GrpcAuditInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  if (info->method() == nullptr || !AccessPolicy::Audited(info->method())) return nullptr;
  return new GrpcAuditInterceptor(authorizer_, info);
}

}  // namespace bnserve
