#include "server/model_registry_service.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "server/grpc_status_util.h"
#include "server/model_export.h"

namespace bnserve {
namespace {

// The request of ImportModel, parsed from the bytes gRPC received (the
// slices are shared, not copied). InvalidArgument "not a valid exported
// model: ..." when they do not parse: a truncated or damaged export, or
// another file.
absl::StatusOr<v1::ImportModelRequest> ParseImportModelRequest(const grpc::ByteBuffer& bytes) {
  grpc::ByteBuffer buffer(bytes);  // a reference to the same slices
  v1::ImportModelRequest request;
  grpc::ProtoBufferReader reader(&buffer);
  if (!reader.status().ok() || !request.ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a valid exported model: the request's ", bytes.Length(),
        " bytes do not parse as a bnserve.v1.ImportModelRequest (a truncated or damaged "
        "export, or not an export at all)"));
  }
  return request;
}

}  // namespace

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  absl::StatusOr<std::vector<v1::Model>> models = registry_->ListModels();
  if (models.ok()) {
    for (v1::Model& model : *models) *response->add_models() = std::move(model);
  }
  return FinishUnary(context, models.status());
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::GetModel(
    grpc::CallbackServerContext* context, const v1::GetModelRequest* request,
    v1::ModelVersion* response) {
  return FinishUnary(context, registry_->Get(request->model(), request->include_parameters()),
                     response);
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::DeleteModelVersion(
    grpc::CallbackServerContext* context, const v1::DeleteModelVersionRequest* request,
    google::protobuf::Empty* response) {
  return FinishUnary(context,
                     registry_->DeleteVersion(request->model_name(), request->version()));
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::SetAlias(
    grpc::CallbackServerContext* context, const v1::SetAliasRequest* request,
    v1::Model* response) {
  return FinishUnary(
      context, registry_->SetAlias(request->model_name(), request->alias(), request->version()),
      response);
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::DeleteAlias(
    grpc::CallbackServerContext* context, const v1::DeleteAliasRequest* request,
    google::protobuf::Empty* response) {
  return FinishUnary(context, registry_->DeleteAlias(request->model_name(), request->alias()));
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::ExportModel(
    grpc::CallbackServerContext* context, const v1::ExportModelRequest* request,
    v1::ModelVersion* response) {
  return FinishUnary(context, ExportModelVersion(registry_, *request), response);
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::ImportModel(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  absl::StatusOr<v1::ImportModelRequest> request = ParseImportModelRequest(*request_bytes);
  if (!request.ok()) return FinishUnary(context, request.status());
  v1::ModelVersion version = std::move(*request->mutable_model());
  if (!request->model_name().empty()) version.set_model_name(request->model_name());
  // A new version here: not produced by a job of this server, created now.
  version.clear_job_id();
  version.clear_created_at();
  version.clear_aliases();
  version.clear_served_folded();  // the exporting server's, not this one's
  version.clear_onnx_model();
  version.set_version(0);
  absl::StatusOr<v1::ModelVersion> stored = registry_->Register(version, nullptr);
  if (!stored.ok()) return FinishUnary(context, stored.status());
  bool own_buffer = false;
  grpc::Status serialized =
      grpc::SerializationTraits<v1::ModelVersion>::Serialize(*stored, response_bytes, &own_buffer);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(serialized);
  return reactor;
}

}  // namespace bnserve
