// bnctl health: the standard grpc.health.v1 check of the whole server (or of
// one service name), or with --ready the Open Inference Protocol's
// ServerReady: the registry is open and the default model, if any, is
// loaded and warmed up (what a container's or Kubernetes' readiness check
// asks).
#include <iostream>

#include "client/commands.h"
#include "client/proto_format.h"
#include "inference/open_inference_grpc.grpc.pb.h"

namespace bnserve {
namespace {

int RunReady(const GlobalOptions& globals, ClientConnection* connection) {
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2 =
      inference::GRPCInferenceService::NewStub(connection->channel());
  inference::ServerReadyResponse response;
  grpc::Status status =
      v2->ServerReady(connection->NewContext().get(), inference::ServerReadyRequest(), &response);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(response) << std::endl;
  } else {
    std::cout << (response.ready() ? "READY" : "NOT_READY") << std::endl;
  }
  return response.ready() ? kExitOk : kExitNotServing;
}

}  // namespace

int RunHealth(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl health [--service NAME | --ready]");
  std::string service;
  bool ready = false;
  parser.AddString("service", &service, "a service name (default: the whole server)");
  parser.AddBool("ready", &ready,
                 "ask for readiness (V2 ServerReady: the default model is loaded) instead");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  if (!globals.timeout_given) globals.timeout = absl::Seconds(5);
  ClientConnection connection(globals);
  if (ready) return RunReady(globals, &connection);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status =
      connection.health().Check(connection.NewContext().get(), request, &response);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(response) << std::endl;
  } else {
    std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
              << std::endl;
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitNotServing;
}

}  // namespace bnserve
