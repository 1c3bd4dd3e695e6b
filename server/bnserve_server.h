// BnserveServer: the assembled bnserve process — SQLite store, model
// catalog, data resolver, job manager, the three bnserve.v1 gRPC services
// (plus the stateless Diagnostics echo of the load tool), the Open Inference
// Protocol's GRPCInferenceService, the standard health service and
// reflection, the HTTP port with the Open Inference Protocol's REST routes
// (server/v2_rest_routes.h) and GET /metrics, and the process's metrics
// (ServerMetrics: every gRPC call through GrpcMetricsInterceptorFactory,
// Predict and ModelInfer, training epochs, and the jobs, cache and registry
// read at scrape time) — built, started and shut down as one. The metrics'
// text is MetricsText(), which GET /metrics serves.
//
// Registry: options.registry_path is a SQLite file (SqliteModelStore, held by
// this process alone) or a postgresql:// URL (PostgresModelStore, shared by
// replicas). With PostgreSQL a probe pings the database every second; while
// it does not answer, kRegistryHealthServiceName is NOT_SERVING and
// ServerReady (gRPC and REST) is false, and Predict of versions already
// loaded keeps working.
//
// Health: service "" and the bnserve.v1 service names are SERVING from start
// to shutdown (liveness); kRegistryHealthServiceName is SERVING while the
// registry answers (readiness); ModelHealthServiceName(m) becomes SERVING when the
// latest version of model m is loaded and warmed up (readiness; the default
// model is loaded in the background at start and every newly registered
// version of a model that was served is too).
//
//   BnserveServerOptions options;
//   options.listen = "127.0.0.1:0";            // any free port
//   options.http_listen = "127.0.0.1:0";       // any free port; "": no HTTP
//   ASSIGN_OR_RETURN(std::unique_ptr<BnserveServer> server,
//                    BnserveServer::Start(options));
//   ... server->port(), server->http_port(), server->InProcessChannel() ...
//   server->Shutdown(absl::Seconds(5));
//
// The HTTP port starts after gRPC. Shutdown order: health NOT_SERVING; the
// HTTP port answers 503 to new requests, waits for the running ones and
// closes (so no HTTP request meets a half-stopped server); background model
// loads stop; the job manager stops accepting,
// cancels queued and running jobs ("server shutting down") and joins its
// workers (so watchers see the final events); gRPC shuts down with the
// deadline; the database is closed last (on destruction).
//
// Security (README "Security"): with tls_cert_file and tls_key_file the port
// speaks TLS only (tls_client_ca_file: clients must present a certificate
// that chains to it); with auth_tokens_file every call needs a bearer token
// whose role AccessPolicy allows (GrpcAuthorizer, checked first in each
// handler); state-changing calls get an "audit:" log line
// (GrpcAuditInterceptorFactory). Start logs a WARNING when it listens on a
// non-loopback address without both.
//
// Thread-safety: Shutdown may be called from any thread, once or more;
// ReloadTokens too.
#ifndef BNSERVE_SERVER_BNSERVE_SERVER_H_
#define BNSERVE_SERVER_BNSERVE_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/server.h"
#include "server/data_resolver.h"
#include "server/diagnostics_service.h"
#include "server/grpc_authorizer.h"
#include "server/grpc_connect_gateway.h"
#include "server/http_server.h"
#include "server/inference_service.h"
#include "server/job_manager.h"
#include "server/model_catalog.h"
#include "server/model_registry_service.h"
#include "server/open_inference.h"
#include "server/open_inference_service.h"
#include "server/server_metrics.h"
#include "server/postgres_model_store.h"
#include "server/sqlite_model_store.h"
#include "server/sweep_manager.h"
#include "server/token_store.h"
#include "server/training_service.h"

namespace bnserve {

struct BnserveServerOptions {
  // host:port to listen on ("127.0.0.1:0" picks a free port); empty: no
  // port, in-process channels only.
  std::string listen = "127.0.0.1:50051";
  // A SQLite file, or a postgresql:// (postgres://) URL.
  std::string registry_path = "var/bnserve.db";
  // SQLite only.
  SqliteModelStore::Durability durability = SqliteModelStore::Durability::kNormal;
  std::string data_dir = "var/data";
  int workers = 1;
  int max_batch = 10000;
  int max_epochs = 200;
  int max_queue = 64;
  // Most points of one training sweep (StartSweep).
  int max_sweep_points = 256;
  int max_message_mb = 64;
  int model_cache = 8;
  // Serve INFERENCE-mode predictions with each version's BatchNorm-folded
  // network (ModelCatalog); false: with the stored network.
  bool fold_batchnorm = true;
  // Largest estimated working memory of one training job (and of one
  // Evaluate forward pass), in MiB.
  int max_job_memory_mb = 4096;
  // Finished jobs kept in memory; inline data of queued jobs, in MiB (the
  // local queue); this replica's name in the jobs it runs from a shared job
  // queue (ModelStore::SharedJobQueue).
  int max_jobs_in_memory = 1000;
  int max_queued_data_mb = 1024;
  std::string replica_id = "bnserve";
  // With a shared job queue: how long a claimed job's lease lasts without a
  // renewal (a replica that dies loses its running job this long after;
  // renewals come every job_poll_interval, well under it).
  absl::Duration job_lease = absl::Seconds(10);
  absl::Duration job_poll_interval = absl::Milliseconds(250);
  // When set, EnsureDefaultModel(default_model) at start: the seed network is
  // trained on mnist-digits unless a job for that model was ever submitted.
  std::string default_model;
  // TLS: PEM files of the server's certificate and key (both or neither);
  // a client CA turns on mutual TLS (client certificates required and
  // verified). Empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // The token file (TokenStore); empty: no access control.
  std::string auth_tokens_file;
  // Register server reflection (open to anyone: it shows the API's schema).
  // false: this server serves none, whatever other servers of the process do.
  bool reflection = true;
  // host:port of the HTTP port (Open Inference REST routes); "127.0.0.1:0"
  // picks a free port; empty: none. (bnserve's --http_listen defaults to
  // 127.0.0.1:8000; here it is off, so that tests never collide on 8000.)
  std::string http_listen;
  // HTTP worker threads: requests, and kept-alive connections, served at once.
  int http_threads = 16;
  // The longest an HTTP read or write may wait for the peer.
  absl::Duration http_request_timeout = absl::Seconds(30);
  // The dashboard's built files, served at "/" on the HTTP port; empty:
  // none. (The bnserve.v1 services are on the HTTP port in the Connect
  // protocol either way: server/grpc_connect_gateway.h.)
  std::string web_root;
};

class BnserveServer {
 public:
  // Opens the store, restores the jobs and starts serving. Unavailable if
  // the port cannot be bound; store errors as SqliteModelStore::Open or
  // PostgresModelStore::Open; TLS
  // file errors as TlsConfig::Load and token file errors as
  // TokenStore::Open (checked before anything else).
  static absl::StatusOr<std::unique_ptr<BnserveServer>> Start(
      const BnserveServerOptions& options);

  // Shutdown(absl::Seconds(5)) if not done yet, then closes the database.
  ~BnserveServer();

  BnserveServer(const BnserveServer&) = delete;
  BnserveServer& operator=(const BnserveServer&) = delete;

  // The bound TCP port (0 without one).
  int port() const { return port_; }

  // The bound HTTP port (0 without one).
  int http_port() const { return http_ != nullptr ? http_->port() : 0; }

  // A channel to this server that bypasses the network (with the same
  // message size limits).
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Graceful shutdown as described above; in-flight RPCs get until
  // `deadline` from now. Idempotent.
  void Shutdown(absl::Duration deadline = absl::Seconds(5));

  // The gRPC health service name whose status is SERVING once a version of
  // `model_name` has been ready while it was the model's latest version.
  static std::string ModelHealthServiceName(const std::string& model_name);

  // The gRPC health service name that is SERVING while the registry answers.
  static constexpr char kRegistryHealthServiceName[] = "bnserve.registry";

  // Reads the token file again (SIGHUP). On error keeps the tokens in use
  // and returns it; FailedPrecondition when the server has no token file.
  absl::Status ReloadTokens();

  // Whether `listen` ("host:port") is a loopback address (127.0.0.0/8,
  // [::1], localhost); false for wildcards and every other host.
  static bool IsLoopbackAddress(const std::string& listen);

  JobManager* jobs() { return jobs_.get(); }
  SweepManager* sweeps() { return sweeps_.get(); }
  OpenInference* open_inference() { return open_inference_.get(); }
  ModelCatalog* catalog() { return catalog_.get(); }

  // The process's metrics, for the HTTP port to serve and for families of
  // its own. Predict and V2 ModelInfer record into them already: the REST
  // route passes InferenceProtocol::kV2Http to open_inference()->ModelInfer
  // (and RecordRefused for a body that does not parse). Lives as long as the
  // server.
  ServerMetrics* metrics() { return metrics_.get(); }

  // The text of GET /metrics (ServerMetrics::TextExposition). Thread-safe;
  // it answers after Shutdown too (the destructor stops its reads of the job
  // manager and the catalog before they go). REQUIRES: not called once the
  // server is destroyed (an HTTP server holding it stops first).
  std::function<std::string()> MetricsText() {
    ServerMetrics* metrics = metrics_.get();
    return [metrics] { return metrics->TextExposition(); };
  }

 private:
  explicit BnserveServer(const BnserveServerOptions& options);

  // The catalog's ready listener: marks the model's health service SERVING
  // when `version` is its latest.
  void OnVersionReady(const std::string& model_name, int version);

  // The registry probe's loop (PostgreSQL): pings every second until
  // stop_probe_, and updates registry_reachable_ and the health service.
  void ProbeRegistry();

  const BnserveServerOptions options_;
  // Declared in construction order; destroyed in reverse (the metrics last:
  // the HTTP port may scrape until the very end).
  const std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<TokenStore> tokens_;  // null: no access control
  std::unique_ptr<GrpcAuthorizer> authorizer_;
  std::unique_ptr<ModelStore> store_;
  PostgresModelStore* postgres_ = nullptr;  // store_ when it is PostgreSQL
  std::atomic<bool> registry_reachable_{true};
  absl::Notification stop_probe_;
  std::thread registry_probe_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<DataResolver> data_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<SweepManager> sweeps_;
  std::unique_ptr<TrainingServiceImpl> training_service_;
  std::unique_ptr<InferenceServiceImpl> inference_service_;
  std::unique_ptr<ModelRegistryServiceImpl> registry_service_;
  std::unique_ptr<DiagnosticsService> diagnostics_service_;
  std::unique_ptr<OpenInference> open_inference_;
  std::unique_ptr<OpenInferenceServiceImpl> open_inference_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ConnectGateway> connect_gateway_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_BNSERVE_SERVER_H_
