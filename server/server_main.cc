// bnserve: the server (gRPC, and HTTP for the Open Inference Protocol's REST
// routes). Reads flags, starts BnserveServer, waits for SIGINT or SIGTERM and
// shuts down gracefully; SIGHUP reloads the token file (--auth_tokens; a
// bad file keeps the tokens in use and logs an error).
//
// Signals are blocked in every thread before any thread starts and taken by
// sigwait() in main(), so no work happens inside a signal handler.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "core/builtin_datasets.h"
#include "core/logging.h"
#include "server/allocator_tuning.h"
#include "server/bnserve_server.h"
#include "server/postgres_model_store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "host:port to serve gRPC on");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8000",
          "IP:port to serve HTTP on (Open Inference Protocol REST routes; port 0 picks a free "
          "port); empty: no HTTP port");
ABSL_FLAG(std::string, web_root, "",
          "directory of the dashboard's built files (build/web/dist), served at / on the HTTP "
          "port; empty: no dashboard (the API stays on the HTTP port)");
ABSL_FLAG(int, http_threads, 16,
          "HTTP worker threads: requests (and kept-alive connections) served at once");
ABSL_FLAG(int, http_timeout_seconds, 30,
          "longest an HTTP read or write of a request may wait for the client");
ABSL_FLAG(std::string, registry, "var/bnserve.db",
          "the registry of models, versions, aliases and jobs: a SQLite database file (created "
          "with its directory), or a postgresql://user@host:port/db URL shared by replicas "
          "(README \"Running with PostgreSQL\")");
ABSL_FLAG(std::string, data_dir, bnserve::DefaultDataDir(),
          "directory of the built-in data sets and the only place IDX paths may point into");
ABSL_FLAG(int, workers, 1, "training worker threads");
ABSL_FLAG(int, max_batch, 10000, "largest Predict / inline Evaluate batch, in rows");
ABSL_FLAG(int, max_epochs, 200, "largest number of epochs a training job may ask for");
ABSL_FLAG(int, max_queue, 64, "queued training jobs beyond which Train is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_sweep_points, 256,
          "most jobs of one training sweep (StartSweep), beyond which it is INVALID_ARGUMENT");
ABSL_FLAG(int, max_message_mb, 64, "largest gRPC message received or sent, in MiB");
ABSL_FLAG(int, max_job_memory_mb, 4096,
          "largest estimated working memory of one training job or Evaluate forward pass; "
          "a bigger network or batch is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_jobs_in_memory, 1000,
          "finished training jobs kept in memory (the most recent); older ones are read from "
          "the registry");
ABSL_FLAG(int, max_queued_data_mb, 1024,
          "inline training data of queued jobs, in MiB, beyond which Train is "
          "RESOURCE_EXHAUSTED (with a shared job queue they are in the database instead)");
ABSL_FLAG(std::string, replica_id, "",
          "this replica's name in the jobs it runs from a shared job queue; empty: the host "
          "name");
ABSL_FLAG(absl::Duration, job_lease, absl::Seconds(10),
          "with a shared (PostgreSQL) registry: a running job's lease; a replica that dies "
          "leaves its job to be marked FAILED \"worker lost\" by another this long after");
ABSL_FLAG(absl::Duration, job_poll_interval, absl::Milliseconds(250),
          "with a shared registry: how often idle workers look for queued jobs and leases are "
          "renewed (must be well under --job_lease)");
ABSL_FLAG(int, model_cache, 8, "model versions kept loaded for Predict and Evaluate");
ABSL_FLAG(bool, fold_batchnorm, true,
          "answer INFERENCE-mode predictions with each version's BatchNorm layers folded into "
          "the Affine layers before them (BATCH_STATISTICS always runs the stored network)");
ABSL_FLAG(std::string, default_model, "",
          "if set, train the book's seed network on mnist-digits under this model name at the "
          "first start (when no job for that model was ever submitted)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate (chain) of the server: with --tls_key, the port speaks TLS only");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s): turns on mutual TLS, clients must present a certificate "
          "signed by it");
ABSL_FLAG(std::string, auth_tokens, "",
          "token file, one \"name role sha256hex\" per line (roles viewer, trainer, admin): "
          "every call but health needs \"authorization: Bearer <token>\"; reloaded on SIGHUP");
ABSL_FLAG(bool, reflection, true,
          "serve gRPC server reflection (open to anyone, also with --auth_tokens: it shows the "
          "API's schema, no data)");
ABSL_FLAG(std::string, durability, "normal",
          "normal: a committed version or job survives a crash of the process (SQLite WAL, "
          "synchronous=NORMAL); full: also a power loss (synchronous=FULL, a sync per write)");
ABSL_FLAG(int, shutdown_grace_seconds, 5, "how long in-flight RPCs may take at shutdown");

namespace {

// `listen` ("host:port") with `port` as its port.
std::string WithPort(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return listen;
  return listen.substr(0, colon + 1) + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("bnserve: trains and serves Batch Normalization networks over gRPC");
  absl::ParseCommandLine(argc, argv);
  // Before any thread: freed request buffers stay in the heap for the next call.
  bnserve::KeepFreedMemoryForReuse();

  // Block the shutdown signals before any thread exists; every thread
  // inherits the mask and main() takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bnserve::BnserveServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.registry_path = absl::GetFlag(FLAGS_registry);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.max_sweep_points = absl::GetFlag(FLAGS_max_sweep_points);
  options.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  options.model_cache = absl::GetFlag(FLAGS_model_cache);
  options.fold_batchnorm = absl::GetFlag(FLAGS_fold_batchnorm);
  options.max_job_memory_mb = absl::GetFlag(FLAGS_max_job_memory_mb);
  options.max_jobs_in_memory = absl::GetFlag(FLAGS_max_jobs_in_memory);
  options.max_queued_data_mb = absl::GetFlag(FLAGS_max_queued_data_mb);
  options.replica_id = absl::GetFlag(FLAGS_replica_id);
  if (options.replica_id.empty()) {
    char host[256] = {};
    options.replica_id = gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0'
                             ? std::string(host)
                             : std::string("bnserve");
  }
  options.job_lease = absl::GetFlag(FLAGS_job_lease);
  options.job_poll_interval = absl::GetFlag(FLAGS_job_poll_interval);
  if (options.job_poll_interval <= absl::ZeroDuration() ||
      options.job_lease < 2 * options.job_poll_interval) {
    BNSERVE_LOG(ERROR) << "--job_poll_interval must be positive and --job_lease at least twice "
                          "as long";
    return EXIT_FAILURE;
  }
  if (options.max_jobs_in_memory < 0 || options.max_queued_data_mb < 1) {
    BNSERVE_LOG(ERROR) << "--max_jobs_in_memory must be >= 0 and --max_queued_data_mb positive";
    return EXIT_FAILURE;
  }
  options.default_model = absl::GetFlag(FLAGS_default_model);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens);
  options.reflection = absl::GetFlag(FLAGS_reflection);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_threads = absl::GetFlag(FLAGS_http_threads);
  options.web_root = absl::GetFlag(FLAGS_web_root);
  options.http_request_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_timeout_seconds));
  const std::string durability = absl::GetFlag(FLAGS_durability);
  if (durability == "full") {
    options.durability = bnserve::SqliteModelStore::Durability::kFull;
  } else if (durability != "normal") {
    BNSERVE_LOG(ERROR) << "--durability must be normal or full, got \"" << durability << "\"";
    return EXIT_FAILURE;
  }
  if (options.workers < 1 || options.max_batch < 1 || options.max_epochs < 1 ||
      options.max_queue < 1 || options.max_sweep_points < 1 || options.max_message_mb < 1 ||
      options.model_cache < 1 || options.max_job_memory_mb < 1 || options.http_threads < 1 ||
      absl::GetFlag(FLAGS_http_timeout_seconds) < 1) {
    BNSERVE_LOG(ERROR) << "--workers, --max_batch, --max_epochs, --max_queue, "
                          "--max_sweep_points, --max_message_mb, --model_cache, "
                          "--max_job_memory_mb, --http_threads and --http_timeout_seconds "
                          "must be positive";
    return EXIT_FAILURE;
  }

  absl::StatusOr<std::unique_ptr<bnserve::BnserveServer>> server =
      bnserve::BnserveServer::Start(options);
  if (!server.ok()) {
    BNSERVE_LOG(ERROR) << "bnserve failed to start: " << server.status();
    return EXIT_FAILURE;
  }
  // The bound ports in place of the requested ones (port 0 picks one). The
  // HTTP line comes first: a reader that waits for "bnserve listening on"
  // finds both.
  if (!options.http_listen.empty()) {
    BNSERVE_LOG(INFO) << "bnserve HTTP listening on "
                      << WithPort(options.http_listen, (*server)->http_port())
                      << (options.web_root.empty() ? "" : " (dashboard at /)");
  }
  const std::string address = WithPort(options.listen, (*server)->port());
  BNSERVE_LOG(INFO) << "bnserve listening on " << address << " (registry "
                    << bnserve::PostgresModelStore::RedactedUrl(options.registry_path) << ", data " << options.data_dir << ", "
                    << options.workers << " worker(s))";

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    absl::Status reloaded = (*server)->ReloadTokens();
    if (!reloaded.ok()) {
      BNSERVE_LOG(ERROR) << "SIGHUP: tokens not reloaded, the old ones stay in use: " << reloaded;
    }
  }
  BNSERVE_LOG(INFO) << "received signal " << signal_number << ", shutting down";
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds)));
  server->reset();  // closes the database
  BNSERVE_LOG(INFO) << "database closed, exiting";
  return EXIT_SUCCESS;
}
