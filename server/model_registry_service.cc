#include "server/model_registry_service.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/grpc_status_util.h"

namespace bnserve {

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
  return FinishUnary(context, registry_->Get(request->model(), true), response);
}

grpc::ServerUnaryReactor* ModelRegistryServiceImpl::ImportModel(
    grpc::CallbackServerContext* context, const v1::ImportModelRequest* request,
    v1::ModelVersion* response) {
  v1::ModelVersion version = request->model();
  if (!request->model_name().empty()) version.set_model_name(request->model_name());
  // A new version here: not produced by a job of this server, created now.
  version.clear_job_id();
  version.clear_created_at();
  version.clear_aliases();
  version.set_version(0);
  absl::StatusOr<v1::ModelVersion> stored = registry_->Register(version, nullptr);
  if (stored.ok()) *response = *std::move(stored);
  return FinishUnary(context, stored.status());
}

}  // namespace bnserve
