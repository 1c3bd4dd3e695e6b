// ClientConnection: one gRPC channel to a bnserve server (or to several
// replicas, balanced call by call with gRPC's round_robin policy) and a stub
// per service, plus the options every bnctl subcommand shares (--server, --json,
// --timeout, --token, --tls-ca, --tls-cert, --tls-key) and the conversion of
// a failed call into a printed error. With --tls-ca (or a client
// certificate) the channel is TLS; with a token every call carries
// "authorization: Bearer <token>".
//
// The stubs are thread-safe (gRPC's are); a ClientConnection may be shared by
// threads once created. NewContext() returns a fresh context per call.
#ifndef BNSERVE_CLIENT_CLIENT_CONNECTION_H_
#define BNSERVE_CLIENT_CLIENT_CONNECTION_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "client/arg_parser.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace bnserve {

// The flags every subcommand accepts.
struct GlobalOptions {
  // host:port, a comma-separated list of IP:port (replicas), or a gRPC
  // target such as dns:///name:port; default $BNSERVE_SERVER, else
  // 127.0.0.1:50051. GrpcTarget turns it into the channel's target.
  std::string server;
  // Print responses as protobuf JSON instead of text.
  bool json = false;
  // Deadline of each unary call; streams (watch, --follow) wait without one
  // unless --timeout is given.
  absl::Duration timeout = absl::Seconds(30);
  bool timeout_given = false;
  bool help = false;
  // Bearer token sent with every call; default $BNSERVE_TOKEN.
  std::string token;
  // TLS: the CA that signed the server's certificate (empty with a client
  // certificate: the system's roots), and the client's certificate and key
  // for mutual TLS. Paths; LoadTlsFiles reads them into the *_pem fields.
  std::string tls_ca, tls_cert, tls_key;
  std::string tls_ca_pem, tls_cert_pem, tls_key_pem;

  bool tls() const { return !tls_ca.empty() || !tls_cert.empty(); }

  // Defaults, with the environment applied.
  static GlobalOptions Defaults();
};

// Registers --server, --json, --timeout, --token, --tls-ca, --tls-cert,
// --tls-key and --help on `parser`.
void AddGlobalFlags(ArgParser* parser, GlobalOptions* options);

// Reads the TLS files named in `options` into its *_pem fields.
// InvalidArgument when only one of --tls-cert and --tls-key is given, or a
// file cannot be read (naming it).
absl::Status LoadTlsFiles(GlobalOptions* options);

// The gRPC target for --server: a single host:port or a scheme target
// (dns:///name:port, ipv4:..., ipv6:..., unix:...) unchanged; a
// comma-separated list of IP:port becomes one multi-address target
// ("ipv4:10.0.0.1:50051,10.0.0.2:50051", or "ipv6:[::1]:50051,..."), which
// the channel balances over with round_robin. InvalidArgument for an empty
// entry, an entry without a port, a host name in a list (gRPC resolves lists
// of addresses only: use dns:///name:port, whose every address is used), or
// a list mixing IPv4 and IPv6.
absl::StatusOr<std::string> GrpcTarget(const std::string& server);

// The service config every bnctl channel carries: round_robin over all the
// addresses the target resolves to (one call to each in turn), instead of
// gRPC's default pick_first (every call to the first that connects).
inline constexpr char kRoundRobinServiceConfig[] =
    R"({"loadBalancingConfig":[{"round_robin":{}}]})";

class ClientConnection {
 public:
  // Creates the channel (lazily connected: nothing is sent here) to
  // GrpcTarget(options.server), with kRoundRobinServiceConfig. The channel
  // carries messages up to 256 MiB, enough for an exported model.
  // REQUIRES: GrpcTarget(options.server).ok() (ParseCommand checks it).
  // `own_connection` gives the channel its own TCP connection instead of one
  // shared with other channels to the same address (for the load tool).
  explicit ClientConnection(const GlobalOptions& options, bool own_connection = false);

  v1::TrainingService::Stub& training() { return *training_; }
  v1::InferenceService::Stub& inference() { return *inference_; }
  v1::ModelRegistry::Stub& registry() { return *registry_; }
  grpc::health::v1::Health::Stub& health() { return *health_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // A context with the --timeout deadline (for a stream, a deadline only when
  // --timeout was given) and the bearer token, if any.
  std::unique_ptr<grpc::ClientContext> NewContext(bool streaming = false) const;

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelRegistry::Stub> registry_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// The same code and message as an absl::Status (the codes agree number for number).
absl::Status FromGrpcStatus(const grpc::Status& status);

// Process exit codes of bnctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;          // a call failed
inline constexpr int kExitUsage = 2;          // bad command line
inline constexpr int kExitJobUnsuccessful = 3;  // a followed job FAILED or was CANCELLED
inline constexpr int kExitNotServing = 4;     // health: not SERVING

// Prints "bnctl: CODE: message" to stderr and returns kExitError.
int ReportError(const absl::Status& status);
// Prints the error, a hint to --help, and returns kExitUsage.
int ReportUsageError(const absl::Status& status, const ArgParser& parser);

}  // namespace bnserve

#endif  // BNSERVE_CLIENT_CLIENT_CONNECTION_H_
