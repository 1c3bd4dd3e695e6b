// ModelRegistryServiceImpl: the bnserve.v1.ModelRegistry service on the gRPC
// callback API, a thin layer over the ModelCatalog (which owns the
// rules: name and alias syntax, immutable versions, alias protection).
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_MODEL_REGISTRY_SERVICE_H_
#define BNSERVE_SERVER_MODEL_REGISTRY_SERVICE_H_

#include "bnserve/v1/model_registry.grpc.pb.h"
#include "server/model_catalog.h"

namespace bnserve {

class ModelRegistryServiceImpl final : public v1::ModelRegistry::CallbackService {
 public:
  // `catalog` must outlive the service.
  explicit ModelRegistryServiceImpl(ModelCatalog* catalog) : registry_(catalog) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::ModelVersion* response) override;
  grpc::ServerUnaryReactor* DeleteModelVersion(grpc::CallbackServerContext* context,
                                               const v1::DeleteModelVersionRequest* request,
                                               google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* SetAlias(grpc::CallbackServerContext* context,
                                     const v1::SetAliasRequest* request,
                                     v1::Model* response) override;
  grpc::ServerUnaryReactor* DeleteAlias(grpc::CallbackServerContext* context,
                                        const v1::DeleteAliasRequest* request,
                                        google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* ExportModel(grpc::CallbackServerContext* context,
                                        const v1::ExportModelRequest* request,
                                        v1::ModelVersion* response) override;
  grpc::ServerUnaryReactor* ImportModel(grpc::CallbackServerContext* context,
                                        const v1::ImportModelRequest* request,
                                        v1::ModelVersion* response) override;

 private:
  ModelCatalog* const registry_;  // the catalog this service fronts
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_MODEL_REGISTRY_SERVICE_H_
