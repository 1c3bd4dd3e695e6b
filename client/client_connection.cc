#include "client/client_connection.h"

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace bnserve {

GlobalOptions GlobalOptions::Defaults() {
  GlobalOptions options;
  const char* env = std::getenv("BNSERVE_SERVER");
  options.server = (env != nullptr && *env != '\0') ? env : "127.0.0.1:50051";
  return options;
}

void AddGlobalFlags(ArgParser* parser, GlobalOptions* options) {
  parser->AddString("server", &options->server,
                    "host:port of bnserve (default $BNSERVE_SERVER or 127.0.0.1:50051)");
  parser->AddBool("json", &options->json, "print responses as protobuf JSON");
  parser->AddDuration("timeout", &options->timeout,
                      "deadline of each call (default 30s; streams: none)");
  parser->AddBool("help", &options->help, "print this help");
}

ClientConnection::ClientConnection(const GlobalOptions& options, bool own_connection)
    : options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel(options.server, grpc::InsecureChannelCredentials(),
                                       args);
  training_ = v1::TrainingService::NewStub(channel_);
  inference_ = v1::InferenceService::NewStub(channel_);
  registry_ = v1::ModelRegistry::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> ClientConnection::NewContext(bool streaming) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!streaming || options_.timeout_given) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  }
  return context;
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

int ReportError(const absl::Status& status) {
  std::cerr << "bnctl: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << std::endl;
  return kExitError;
}

int ReportUsageError(const absl::Status& status, const ArgParser& parser) {
  std::cerr << "bnctl: " << status.message() << "\n" << parser.Help();
  return kExitUsage;
}

}  // namespace bnserve
