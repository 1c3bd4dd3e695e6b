#include "server/bnserve_server.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"
#include "server/access_policy.h"
#include "server/default_model.h"
#include "server/grpc_audit_interceptor.h"
#include "server/grpc_metrics_interceptor.h"
#include "server/grpc_parse_failure_interceptor.h"
#include "server/tls_config.h"
#include "server/v2_rest_routes.h"

namespace bnserve {
namespace {

// Takes gRPC's reflection plugin off one ServerBuilder. Linking
// libgrpc++_reflection registers that plugin for every server of the process
// (a static initializer in the library), so not calling
// InitProtoReflectionServerBuilderPlugin is not enough: without this option
// --reflection=false still served reflection.
class WithoutReflectionOption : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
                                    return plugin->name() == "proto_server_reflection";
                                  }),
                   plugins->end());
  }
};

constexpr const char* kServiceNames[] = {
    "bnserve.v1.TrainingService",
    "bnserve.v1.InferenceService",
    "bnserve.v1.ModelRegistry",
};

void SetServing(grpc::Server* server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const char* name : kServiceNames) health->SetServingStatus(name, serving);
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const std::optional<TlsConfig>& tls) {
  if (!tls.has_value()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      tls->mutual() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = tls->client_ca_pem;
  ssl.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->cert_chain_pem});
  return grpc::SslServerCredentials(ssl);
}

// `routes` with the bearer-token check of AccessPolicy in front of each
// handler: "authorization: Bearer <token>" as on gRPC; 401 (with
// WWW-Authenticate: Bearer) without a valid token, 403 for a role without
// the right. `tokens` null: the routes unchanged.
std::vector<HttpRoute> WithAccessControl(std::vector<HttpRoute> routes, const TokenStore* tokens) {
  if (tokens == nullptr) return routes;
  for (HttpRoute& route : routes) {
    const std::string key = absl::StrCat(route.method, " ", route.pattern);
    route.handler = [tokens, key, inner = std::move(route.handler)](const HttpRequest& request) {
      std::optional<Role> role;
      if (std::optional<absl::string_view> header = request.Header("authorization")) {
        if (std::optional<absl::string_view> token = GrpcAuthorizer::BearerToken(*header)) {
          if (std::optional<TokenIdentity> identity = tokens->Authenticate(*token)) {
            role = identity->role;
          }
        }
      }
      const absl::Status allowed = AccessPolicy::Check(role, key, false);
      if (allowed.ok()) return inner(request);
      HttpResponse refused = HttpResponse::FromStatus(allowed);
      if (allowed.code() == absl::StatusCode::kUnauthenticated) {
        refused.headers.push_back({"WWW-Authenticate", "Bearer"});
      }
      return refused;
    };
  }
  return routes;
}

}  // namespace

bool BnserveServer::IsLoopbackAddress(const std::string& listen) {
  std::string host = listen;
  const size_t colon = host.rfind(':');
  if (colon != std::string::npos) host = host.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  // 127.x.y.z
  std::vector<std::string> parts = absl::StrSplit(host, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (const std::string& part : parts) {
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value < 0 || value > 255) return false;
  }
  return true;
}

absl::Status BnserveServer::ReloadTokens() {
  if (tokens_ == nullptr) {
    return absl::FailedPreconditionError("no --auth_tokens file to reload");
  }
  RETURN_IF_ERROR(tokens_->Reload());
  BNSERVE_LOG(INFO) << "reloaded " << tokens_->size() << " token(s) from " << tokens_->path();
  return absl::OkStatus();
}

BnserveServer::BnserveServer(const BnserveServerOptions& options)
    : options_(options), metrics_(std::make_unique<ServerMetrics>()) {}

std::string BnserveServer::ModelHealthServiceName(const std::string& model_name) {
  return absl::StrCat("bnserve.model.", model_name);
}

void BnserveServer::OnVersionReady(const std::string& model_name, int version) {
  v1::ModelRef latest;
  latest.set_name(model_name);
  absl::StatusOr<int> number = catalog_->Resolve(latest);
  if (!number.ok() || *number != version) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(ModelHealthServiceName(model_name), true);
}

absl::StatusOr<std::unique_ptr<BnserveServer>> BnserveServer::Start(
    const BnserveServerOptions& options) {
  std::unique_ptr<BnserveServer> server(new BnserveServer(options));
  ASSIGN_OR_RETURN(
      std::optional<TlsConfig> tls,
      TlsConfig::Load(options.tls_cert_file, options.tls_key_file, options.tls_client_ca_file));
  if (!options.auth_tokens_file.empty()) {
    ASSIGN_OR_RETURN(server->tokens_, TokenStore::Open(options.auth_tokens_file));
  }
  server->authorizer_ = std::make_unique<GrpcAuthorizer>(server->tokens_.get());
  const GrpcAuthorizer* authorizer = server->authorizer_.get();
  if (PostgresModelStore::IsPostgresUrl(options.registry_path)) {
    ASSIGN_OR_RETURN(std::unique_ptr<PostgresModelStore> postgres,
                     PostgresModelStore::Open(options.registry_path, PostgresModelStore::Options()));
    server->postgres_ = postgres.get();
    server->store_ = std::move(postgres);
  } else {
    ASSIGN_OR_RETURN(server->store_,
                     SqliteModelStore::Open(options.registry_path, options.durability));
  }
  server->catalog_ = std::make_unique<ModelCatalog>(server->store_.get(), options.model_cache,
                                                    options.fold_batchnorm);
  server->data_ = std::make_unique<DataResolver>(options.data_dir);
  JobManagerOptions job_options;
  job_options.workers = options.workers;
  job_options.max_queue = options.max_queue;
  job_options.max_epochs = options.max_epochs;
  job_options.max_job_bytes = int64_t{options.max_job_memory_mb} << 20;
  job_options.max_finished_jobs_in_memory = options.max_jobs_in_memory;
  job_options.max_queued_data_bytes = int64_t{options.max_queued_data_mb} << 20;
  job_options.shared_queue = server->store_->SharedJobQueue();
  job_options.replica_id = options.replica_id;
  job_options.lease = options.job_lease;
  job_options.poll_interval = options.job_poll_interval;
  ServerMetrics* metrics = server->metrics_.get();
  job_options.on_epoch_finished = [metrics](const FinishedEpoch& epoch) {
    metrics->RecordEpoch(epoch);
  };
  server->jobs_ = std::make_unique<JobManager>(server->store_.get(), server->catalog_.get(),
                                               server->data_.get(), job_options);
  RETURN_IF_ERROR(server->jobs_->Start());
  SweepManagerOptions sweep_options;
  sweep_options.max_points = options.max_sweep_points;
  server->sweeps_ = std::make_unique<SweepManager>(server->store_.get(), server->jobs_.get(),
                                                   sweep_options);
  RETURN_IF_ERROR(server->sweeps_->Start());
  // Read at scrape time; cleared by the destructor before these go.
  JobManager* jobs = server->jobs_.get();
  ModelCatalog* catalog = server->catalog_.get();
  MetricsSources sources;
  sources.jobs = [jobs] { return jobs->Stats(); };
  sources.model_cache = [catalog] { return catalog->cache_stats(); };
  sources.models = [catalog] { return catalog->ListModels(); };
  metrics->SetSources(std::move(sources));
  server->training_service_ = std::make_unique<TrainingServiceImpl>(
      server->jobs_.get(), server->sweeps_.get(), authorizer);
  InferenceServiceOptions inference_options;
  inference_options.max_batch = options.max_batch;
  // An Evaluate forward pass gets the memory budget of a training job.
  inference_options.max_evaluation_bytes = int64_t{options.max_job_memory_mb} << 20;
  inference_options.max_response_bytes = int64_t{options.max_message_mb} << 20;
  server->inference_service_ = std::make_unique<InferenceServiceImpl>(
      server->catalog_.get(), server->data_.get(), inference_options, metrics, authorizer);
  server->registry_service_ =
      std::make_unique<ModelRegistryServiceImpl>(server->catalog_.get(), authorizer);
  server->diagnostics_service_ = std::make_unique<DiagnosticsService>(authorizer);
  OpenInferenceOptions open_inference_options;
  open_inference_options.default_model = options.default_model;
  BnserveServer* const self = server.get();
  open_inference_options.registry_ready = [self] { return self->registry_reachable_.load(); };
  server->open_inference_ = std::make_unique<OpenInference>(
      server->catalog_.get(), server->inference_service_->predictor(), open_inference_options,
      metrics);
  server->open_inference_service_ =
      std::make_unique<OpenInferenceServiceImpl>(server->open_inference_.get(), authorizer);

  grpc::EnableDefaultHealthCheckService(true);
  if (options.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!options.reflection) builder.SetOption(std::make_unique<WithoutReflectionOption>());
  const int max_bytes = options.max_message_mb * 1024 * 1024;
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  // gRPC sets SO_REUSEPORT by default: a second server on the same port
  // would start silently and split the clients. One owner per port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!options.listen.empty()) {
    builder.AddListeningPort(options.listen, Credentials(tls), &server->port_);
  }
  builder.RegisterService(server->training_service_.get());
  builder.RegisterService(server->inference_service_.get());
  builder.RegisterService(server->registry_service_.get());
  builder.RegisterService(server->diagnostics_service_.get());
  builder.RegisterService(server->open_inference_service_.get());
  // INTERNAL, not gRPC's UNIMPLEMENTED, for a request that does not parse.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<ParseFailureInterceptorFactory>());
  // After it, so that the audit line has the status sent.
  interceptors.push_back(std::make_unique<GrpcAuditInterceptorFactory>(authorizer));
  // Last, so that it counts the status the client gets.
  interceptors.push_back(std::make_unique<GrpcMetricsInterceptorFactory>(metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || (!options.listen.empty() && server->port_ == 0)) {
    server->jobs_->Shutdown();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen, " (is another server using the port?)"));
  }
  if (!options.listen.empty() && !IsLoopbackAddress(options.listen) &&
      (!tls.has_value() || server->tokens_ == nullptr)) {
    BNSERVE_LOG(WARNING)
        << "!!! bnserve listens on " << options.listen << " (not loopback) "
        << (tls.has_value() ? "" : "WITHOUT TLS ")
        << (server->tokens_ != nullptr ? "" : "WITHOUT TOKENS ")
        << "- anyone who can reach the port can "
        << (server->tokens_ != nullptr ? "read the traffic and tokens"
                                       : "train, delete models, move aliases and export parameters")
        << ". Use --tls_cert/--tls_key and --auth_tokens (README \"Security\") !!!";
  }
  if (server->tokens_ != nullptr) {
    BNSERVE_LOG(INFO) << "access control on: " << server->tokens_->size() << " token(s) from "
                      << options.auth_tokens_file;
  }
  if (tls.has_value()) {
    BNSERVE_LOG(INFO) << (tls->mutual() ? "mutual TLS" : "TLS") << " on " << options.listen;
  }
  if (!options.http_listen.empty()) {
    HttpServerOptions http_options;
    http_options.listen = options.http_listen;
    http_options.threads = options.http_threads;
    // A REST body may be as large as a gRPC message.
    http_options.max_body_bytes = int64_t{options.max_message_mb} << 20;
    http_options.request_timeout = options.http_request_timeout;
    http_options.static_root = options.web_root;
    http_options.tls = tls;
    std::vector<HttpRoute> routes = WithAccessControl(
        V2RestRoutes(server->open_inference_.get(), server->MetricsText()), server->tokens_.get());
    // Checked by the services' own authorizer, through the in-process channel.
    server->connect_gateway_ = std::make_unique<ConnectGateway>(
        server->InProcessChannel(), std::vector<std::string>(std::begin(kServiceNames),
                                                             std::end(kServiceNames)),
        http_options.max_body_bytes);
    for (HttpRoute& route : server->connect_gateway_->Routes()) routes.push_back(std::move(route));
    ASSIGN_OR_RETURN(server->http_, HttpServer::Start(http_options, std::move(routes)));
    if (!IsLoopbackAddress(options.http_listen) &&
        (!tls.has_value() || server->tokens_ == nullptr)) {
      BNSERVE_LOG(WARNING) << "!!! the HTTP port " << options.http_listen << " is not loopback and "
                           << (tls.has_value() ? "" : "has no TLS (--tls_cert) ")
                           << (server->tokens_ != nullptr ? "" : "has no tokens (--auth_tokens) ")
                           << "!!!";
    }
    if (tls.has_value()) {
      BNSERVE_LOG(INFO) << (tls->mutual() ? "mutual TLS" : "TLS") << " (HTTPS) on "
                        << options.http_listen;
    }
  }
  SetServing(server->server_.get(), true);
  if (grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService()) {
    health->SetServingStatus(kRegistryHealthServiceName, true);
  }
  if (server->postgres_ != nullptr) {
    server->registry_probe_ = std::thread([self] { self->ProbeRegistry(); });
  }
  server->catalog_->SetReadyListener([self](const std::string& model_name, int version) {
    self->OnVersionReady(model_name, version);
  });
  if (!server->options_.default_model.empty()) {
    RETURN_IF_ERROR(EnsureDefaultModel(server->options_.default_model, server->jobs_.get()));
    // Ready before its first request: loaded now if trained already, and
    // each version its jobs register as soon as it is stored.
    server->catalog_->KeepLatestReady(server->options_.default_model);
  }
  return server;
}

BnserveServer::~BnserveServer() {
  Shutdown();
  // No scrape may read the job manager or the catalog once they are gone.
  metrics_->SetSources({});
}

std::shared_ptr<grpc::Channel> BnserveServer::InProcessChannel() {
  grpc::ChannelArguments args;
  const int max_bytes = options_.max_message_mb * 1024 * 1024;
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  return server_->InProcessChannel(args);
}

void BnserveServer::ProbeRegistry() {
  while (!stop_probe_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    const absl::Status status = postgres_->Ping();
    if (status.ok() == registry_reachable_.exchange(status.ok())) continue;
    if (status.ok()) {
      BNSERVE_LOG(INFO) << "the registry answers again: ready";
    } else {
      BNSERVE_LOG(WARNING) << "the registry does not answer, not ready: " << status;
    }
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
      health->SetServingStatus(kRegistryHealthServiceName, status.ok());
    }
  }
}

void BnserveServer::Shutdown(absl::Duration deadline) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  stop_probe_.Notify();
  if (registry_probe_.joinable()) registry_probe_.join();
  const absl::Time end = absl::Now() + deadline;
  if (server_ != nullptr) SetServing(server_.get(), false);
  // Streams through the gateway (WatchJob) would hold the HTTP port open.
  if (connect_gateway_ != nullptr) connect_gateway_->Shutdown();
  if (http_ != nullptr) http_->Shutdown(end - absl::Now());
  if (catalog_ != nullptr) catalog_->StopBackgroundLoads();
  if (server_ != nullptr && server_->GetHealthCheckService() != nullptr) {
    // Every service name, the per-model ones included, NOT_SERVING for good.
    server_->GetHealthCheckService()->Shutdown();
  }
  if (jobs_ != nullptr) jobs_->Shutdown("server shutting down");
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(end));
    server_->Wait();
  }
  BNSERVE_LOG(INFO) << "bnserve stopped";
}

}  // namespace bnserve
