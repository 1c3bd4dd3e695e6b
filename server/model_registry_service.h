// ModelRegistryServiceImpl: the bnserve.v1.ModelRegistry service on the gRPC
// callback API, a thin layer over the ModelCatalog (which owns the
// rules: name and alias syntax, immutable versions, alias protection).
//
// ImportModel is registered raw (its request and response cross as
// grpc::ByteBuffer) so that it parses its request itself: its payload is a
// user's file, and gRPC 1.51 answers a request it cannot parse with
// UNIMPLEMENTED and no message, where a user needs INVALID_ARGUMENT "not a
// valid exported model" (the other methods: see ParseFailureInterceptor).
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_MODEL_REGISTRY_SERVICE_H_
#define BNSERVE_SERVER_MODEL_REGISTRY_SERVICE_H_

#include "bnserve/v1/model_registry.grpc.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/grpc_authorizer.h"
#include "server/model_catalog.h"

namespace bnserve {

class ModelRegistryServiceImpl final
    : public v1::ModelRegistry::WithRawCallbackMethod_ImportModel<
          v1::ModelRegistry::CallbackService> {
 public:
  // `catalog` must outlive the service.
  // `authorizer` (null: no access control) must outlive the service.
  explicit ModelRegistryServiceImpl(ModelCatalog* catalog,
                                    const GrpcAuthorizer* authorizer = nullptr)
      : registry_(catalog), authorizer_(authorizer) {}

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
  // `request`: a serialized ImportModelRequest; `response`: the stored
  // ModelVersion, serialized. INVALID_ARGUMENT "not a valid exported model:
  // ..." when the request does not parse; else as the proto says.
  grpc::ServerUnaryReactor* ImportModel(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;

 private:
  ModelCatalog* const registry_;  // the catalog this service fronts
  const GrpcAuthorizer* const authorizer_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_MODEL_REGISTRY_SERVICE_H_
