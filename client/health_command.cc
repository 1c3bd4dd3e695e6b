// bnctl health: the standard grpc.health.v1 check of the whole server.
#include <iostream>

#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {

int RunHealth(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl health [--service NAME]");
  std::string service;
  parser.AddString("service", &service, "a service name (default: the whole server)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  if (!globals.timeout_given) globals.timeout = absl::Seconds(5);
  ClientConnection connection(globals);
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
