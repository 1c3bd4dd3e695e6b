#include "client/client_connection.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

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
                    "host:port of bnserve, IP:port,IP:port,... of replicas or dns:///NAME:PORT (calls "
                    "balanced round-robin; default $BNSERVE_SERVER or 127.0.0.1:50051)");
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

namespace {

// The resolver schemes of gRPC's C core: a target starting "<scheme>:" is
// passed to gRPC as it is.
constexpr const char* kTargetSchemes[] = {"dns", "ipv4", "ipv6", "unix", "unix-abstract",
                                          "vsock", "xds"};

bool HasScheme(absl::string_view target) {
  for (const char* scheme : kTargetSchemes) {
    if (absl::StartsWithIgnoreCase(target, absl::StrCat(scheme, ":"))) return true;
  }
  return false;
}

enum class Family { kIpv4, kIpv6 };

// One entry of a --server list: "IPv4:port" or "[IPv6]:port" ("localhost"
// is 127.0.0.1).
absl::Status ParseListEntry(absl::string_view entry, Family* family, std::string* address) {
  const size_t colon = entry.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(entry.substr(colon + 1), &port) ||
      port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server entry \"", entry, "\" is not host:port with a port 1-65535"));
  }
  std::string host(entry.substr(0, colon));
  if (absl::AsciiStrToLower(host) == "localhost") host = "127.0.0.1";
  unsigned char buffer[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
      inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buffer) == 1) {
    *family = Family::kIpv6;
  } else if (inet_pton(AF_INET, host.c_str(), buffer) == 1) {
    *family = Family::kIpv4;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--server entry \"", entry,
        "\": a list takes IP addresses (IPv6 in brackets); for a host name with several "
        "addresses use dns:///NAME:PORT"));
  }
  *address = absl::StrCat(host, ":", port);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> GrpcTarget(const std::string& server) {
  const absl::string_view target = absl::StripAsciiWhitespace(server);
  if (target.empty()) return absl::InvalidArgumentError("--server is empty");
  if (HasScheme(target) || !absl::StrContains(target, ',')) return std::string(target);
  std::vector<std::string> addresses;
  std::optional<Family> list_family;
  for (absl::string_view entry : absl::StrSplit(target, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--server \"", target, "\" has an empty entry"));
    }
    Family family = Family::kIpv4;
    std::string address;
    if (absl::Status s = ParseListEntry(entry, &family, &address); !s.ok()) return s;
    if (list_family.has_value() && *list_family != family) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--server \"", target, "\" mixes IPv4 and IPv6 addresses; gRPC takes one family"));
    }
    list_family = family;
    addresses.push_back(std::move(address));
  }
  return absl::StrCat(*list_family == Family::kIpv4 ? "ipv4:" : "ipv6:",
                      absl::StrJoin(addresses, ","));
}

ClientConnection::ClientConnection(const GlobalOptions& options, bool own_connection)
    : options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetServiceConfigJSON(kRoundRobinServiceConfig);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  // A --server that does not parse (ParseCommand has refused it already)
  // goes to gRPC as given: its calls fail UNAVAILABLE.
  absl::StatusOr<std::string> target = GrpcTarget(options.server);
  const std::string channel_target = target.ok() ? *target : options.server;
  // A multi-address target's calls name its first address as their
  // authority (the name a TLS certificate is checked against); gRPC would
  // take the whole list.
  if (absl::StartsWithIgnoreCase(channel_target, "ipv4:") ||
      absl::StartsWithIgnoreCase(channel_target, "ipv6:")) {
    const std::string addresses = channel_target.substr(5);
    if (absl::StrContains(addresses, ',')) {
      args.SetString(GRPC_ARG_DEFAULT_AUTHORITY,
                     std::string(addresses.substr(0, addresses.find(','))));
    }
  }
  channel_ = grpc::CreateCustomChannel(channel_target, credentials, args);
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
