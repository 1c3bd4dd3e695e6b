#include "client/client_connection.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace bnserve {

GlobalOptions GlobalOptions::Defaults() {
  GlobalOptions options;
  const char* env = std::getenv("BNSERVE_SERVER");
  options.server = (env != nullptr && *env != '\0') ? env : "127.0.0.1:50051";
  const char* token = std::getenv("BNSERVE_TOKEN");
  if (token != nullptr) options.token = token;
  return options;
}

void AddGlobalFlags(ArgParser* parser, GlobalOptions* options) {
  parser->AddString("server", &options->server,
                    "host:port of bnserve (default $BNSERVE_SERVER or 127.0.0.1:50051)");
  parser->AddBool("json", &options->json, "print responses as protobuf JSON");
  parser->AddDuration("timeout", &options->timeout,
                      "deadline of each call (default 30s; streams: none)");
  parser->AddString("token", &options->token,
                    "bearer token sent with every call (default $BNSERVE_TOKEN)");
  parser->AddString("tls-ca", &options->tls_ca,
                    "PEM CA certificate of the server's certificate: connect with TLS");
  parser->AddString("tls-cert", &options->tls_cert,
                    "PEM client certificate for mutual TLS (with --tls-key)");
  parser->AddString("tls-key", &options->tls_key, "PEM key of --tls-cert");
  parser->AddBool("help", &options->help, "print this help");
}

absl::Status LoadTlsFiles(GlobalOptions* options) {
  if (options->tls_cert.empty() != options->tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  auto read = [](const std::string& flag, const std::string& path,
                 std::string* pem) -> absl::Status {
    if (path.empty()) return absl::OkStatus();
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read --", flag, " ", path));
    std::ostringstream text;
    text << in.rdbuf();
    *pem = text.str();
    return absl::OkStatus();
  };
  if (absl::Status s = read("tls-ca", options->tls_ca, &options->tls_ca_pem); !s.ok()) return s;
  if (absl::Status s = read("tls-cert", options->tls_cert, &options->tls_cert_pem); !s.ok()) {
    return s;
  }
  return read("tls-key", options->tls_key, &options->tls_key_pem);
}

ClientConnection::ClientConnection(const GlobalOptions& options, bool own_connection)
    : options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  channel_ = grpc::CreateCustomChannel(options.server, credentials, args);
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
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
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
