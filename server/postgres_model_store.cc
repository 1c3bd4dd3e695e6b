#include "server/postgres_model_store.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {

namespace {

// One schema step: applied once, in order, recorded in schema_migrations.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE models (
  name TEXT PRIMARY KEY,
  next_version INTEGER NOT NULL
);
CREATE TABLE versions (
  model_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  metadata BYTEA NOT NULL,
  PRIMARY KEY (model_name, version)
);
CREATE TABLE tensors (
  model_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  name TEXT NOT NULL,
  shape BYTEA NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (model_name, version, ordinal)
);
CREATE TABLE aliases (
  model_name TEXT NOT NULL,
  alias TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (model_name, alias)
);
CREATE TABLE catalog_generation (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 0);
CREATE TABLE job_metrics (
  job_id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  metrics BYTEA NOT NULL,
  PRIMARY KEY (job_id, epoch)
);
CREATE TABLE sweeps (
  sweep_id TEXT PRIMARY KEY,
  sweep BYTEA NOT NULL
);
)sql"},
    // The shared job queue: a job row carries its lease and, until it
    // finishes, the full request.
    {2, R"sql(
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY,
  seq BIGINT,
  state INTEGER NOT NULL,
  replica TEXT NOT NULL DEFAULT '',
  lease_until TIMESTAMPTZ,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
  cancel_reason TEXT NOT NULL DEFAULT '',
  job BYTEA NOT NULL,
  request BYTEA
);
CREATE INDEX jobs_by_state_seq ON jobs (state, seq);
CREATE SEQUENCE job_seq START 1;
)sql"},
};

// Keys of the advisory locks (any constants, the same in every replica).
constexpr int64_t kMigrationLock = 0x626e736572766531;  // "bnserve1"
constexpr int64_t kEnqueueLock = 0x626e736572766532;    // "bnserve2"

constexpr char kCatalogChannel[] = "bnserve_catalog";

std::string Serialize(const google::protobuf::MessageLite& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  return bytes;
}

pqxx::binarystring Bytes(const std::string& bytes) {
  return pqxx::binarystring(bytes.data(), bytes.size());
}

pqxx::binarystring Bytes(const void* data, size_t size) {
  return pqxx::binarystring(data, size);
}

template <typename Message>
absl::Status ParseField(const pqxx::field& field, Message* message) {
  const pqxx::binarystring bytes(field);
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("a stored ", message->GetTypeName(), " is corrupt"));
  }
  return absl::OkStatus();
}

absl::Status NoSuchVersionError(const std::string& model_name, int version) {
  return absl::NotFoundError(absl::StrCat("model \"", model_name, "\" has no version ", version));
}

absl::Status NoSuchJobError(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}

bool IsTerminal(int state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// The sequence number of a "job-%06d" id, as text for NULLIF($n, '')::bigint.
std::string SeqOfJobId(const std::string& job_id) {
  int64_t seq = 0;
  if (absl::StartsWith(job_id, "job-") && absl::SimpleAtoi(job_id.substr(4), &seq)) {
    return absl::StrCat(seq);
  }
  return "";
}

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d)); }

google::protobuf::Timestamp DbTime(const pqxx::field& epoch_seconds) {
  return TimeToProto(absl::FromUnixMicros(
      static_cast<int64_t>(epoch_seconds.as<double>() * 1e6)));
}

// Upserts one epoch's metrics.
void PutMetrics(pqxx::work& txn, const std::string& job_id, const v1::EpochMetrics& metrics) {
  txn.exec_params(
      "INSERT INTO job_metrics (job_id, epoch, metrics) VALUES ($1, $2, $3) "
      "ON CONFLICT (job_id, epoch) DO UPDATE SET metrics = EXCLUDED.metrics",
      job_id, metrics.epoch(), Bytes(Serialize(metrics)));
}

// Refuses (FailedPrecondition "lease lost") unless job `job_id` is stored
// RUNNING under `replica`; locks its row for the rest of the transaction.
absl::Status CheckLease(pqxx::work& txn, const std::string& job_id, const std::string& replica) {
  const pqxx::result r = txn.exec_params(
      "SELECT state, replica FROM jobs WHERE job_id = $1 FOR UPDATE", job_id);
  if (r.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease lost: job ", job_id, " is not in the shared queue"));
  }
  const int state = r[0][0].as<int>();
  const std::string holder = r[0][1].as<std::string>();
  if (state != v1::RUNNING || holder != replica) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease lost: job ", job_id, " is ", v1::JobState_Name(static_cast<v1::JobState>(state)),
        holder.empty() ? std::string() : absl::StrCat(" under replica ", holder),
        ", not RUNNING under replica ", replica));
  }
  return absl::OkStatus();
}

// Inserts or replaces a job row and its epochs. With `guard`, applies the
// lease guard of the header.
absl::Status PutJobIn(pqxx::work& txn, const v1::Job& job, bool guard) {
  if (job.job_id().empty()) return absl::InvalidArgumentError("a job needs an id");
  if (guard && !job.replica().empty() && job.state() != v1::QUEUED) {
    RETURN_IF_ERROR(CheckLease(txn, job.job_id(), job.replica()));
  }
  v1::Job stored = job;
  stored.clear_epochs();
  txn.exec_params(
      "INSERT INTO jobs (job_id, seq, state, replica, job) "
      "VALUES ($1, NULLIF($2, '')::bigint, $3, $4, $5) "
      "ON CONFLICT (job_id) DO UPDATE SET state = EXCLUDED.state, job = EXCLUDED.job, "
      "replica = CASE WHEN EXCLUDED.replica <> '' THEN EXCLUDED.replica ELSE jobs.replica END, "
      "request = CASE WHEN $6::boolean THEN NULL ELSE jobs.request END, "
      "lease_until = CASE WHEN $6::boolean THEN NULL ELSE jobs.lease_until END",
      job.job_id(), SeqOfJobId(job.job_id()), static_cast<int>(job.state()), job.replica(),
      Bytes(Serialize(stored)), IsTerminal(job.state()) ? "true" : "false");
  for (const v1::EpochMetrics& metrics : job.epochs()) PutMetrics(txn, job.job_id(), metrics);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::EpochMetrics>> MetricsIn(pqxx::work& txn,
                                                        const std::string& job_id,
                                                        int after_epoch) {
  std::vector<v1::EpochMetrics> metrics;
  for (const pqxx::row& row : txn.exec_params(
           "SELECT metrics FROM job_metrics WHERE job_id = $1 AND epoch > $2 ORDER BY epoch",
           job_id, after_epoch)) {
    v1::EpochMetrics m;
    RETURN_IF_ERROR(ParseField(row[0], &m));
    metrics.push_back(std::move(m));
  }
  return metrics;
}

absl::Status AttachEpochs(pqxx::work& txn, v1::Job* job) {
  ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> metrics,
                   MetricsIn(txn, job->job_id(), std::numeric_limits<int>::min()));
  job->clear_epochs();
  for (v1::EpochMetrics& m : metrics) *job->add_epochs() = std::move(m);
  return absl::OkStatus();
}

// The status for a database error not handled by the retry loop.
absl::Status SqlErrorStatus(const pqxx::sql_error& e) {
  const std::string state = e.sqlstate();
  const std::string message = absl::StrCat("PostgreSQL: ", e.what());
  if (state == "23505") return absl::AlreadyExistsError(message);
  if (state == "57014") return absl::DeadlineExceededError(message);  // statement_timeout
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P")) {
    return absl::UnavailableError(message);  // connection exception, shutdown
  }
  if (absl::StartsWith(state, "53")) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

}  // namespace

bool PostgresModelStore::IsPostgresUrl(const std::string& url) {
  return absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://");
}

std::string PostgresModelStore::RedactedUrl(const std::string& url) {
  if (!IsPostgresUrl(url)) return url;
  const size_t authority = url.find("://") + 3;
  const size_t at = url.find('@', authority);
  const size_t slash = url.find('/', authority);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return url;
  const size_t colon = url.find(':', authority);
  if (colon == std::string::npos || colon > at) return url;
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(at));
}

PostgresModelStore::PostgresModelStore(std::string conninfo, Options options)
    : conninfo_(std::move(conninfo)), options_(options) {
  absl::MutexLock lock(&pool_mu_);
  idle_.resize(options_.connections);
}

PostgresModelStore::~PostgresModelStore() {
  stop_.Notify();
  if (listener_.joinable()) listener_.join();
}

absl::StatusOr<std::unique_ptr<PostgresModelStore>> PostgresModelStore::Open(
    const std::string& url, Options options) {
  if (!IsPostgresUrl(url)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a postgresql:// URL: \"", url, "\""));
  }
  if (options.connections < 1 || options.max_attempts < 1 ||
      options.poll_interval <= absl::ZeroDuration() ||
      options.statement_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("PostgresModelStore options out of range");
  }
  std::string conninfo = url;
  if (!absl::StrContains(url, "connect_timeout=")) {
    absl::StrAppend(&conninfo, absl::StrContains(url, "?") ? "&" : "?", "connect_timeout=",
                    std::max<int64_t>(1, absl::ToInt64Seconds(options.connect_timeout)));
  }
  std::unique_ptr<PostgresModelStore> store(new PostgresModelStore(conninfo, options));
  int64_t generation = 0;
  RETURN_IF_ERROR(store->Transact([&generation](pqxx::work& txn) -> absl::Status {
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
    txn.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    const int current =
        txn.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0].as<int>();
    const int newest = kMigrations[std::size(kMigrations) - 1].version;
    if (current > newest) {
      return absl::FailedPreconditionError(
          absl::StrCat("the registry's schema version ", current,
                       " is newer than this server's (", newest, "); upgrade the server"));
    }
    for (const Migration& migration : kMigrations) {
      if (migration.version <= current) continue;
      txn.exec(migration.sql);
      txn.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version);
      BNSERVE_LOG(INFO) << "registry schema migrated to version " << migration.version;
    }
    // The listener's starting point, read before Open returns: a change
    // committed after it, even before the listener's first read, moves
    // CatalogGeneration().
    generation = txn.exec("SELECT generation FROM catalog_generation WHERE id = 1")[0][0]
                     .as<int64_t>();
    return absl::OkStatus();
  }));
  store->listener_ = std::thread([s = store.get(), generation] { s->Listen(generation); });
  return store;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> PostgresModelStore::Connect() const {
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo_);
    pqxx::nontransaction session(*conn);
    session.exec(absl::StrCat("SET statement_timeout = ",
                              absl::ToInt64Milliseconds(options_.statement_timeout)));
    return conn;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", e.what()));
  }
}

absl::Status PostgresModelStore::Transact(
    const std::function<absl::Status(pqxx::work&)>& body) {
  bool reconnected = false;
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<pqxx::connection> conn;
    {
      absl::MutexLock lock(&pool_mu_);
      pool_mu_.Await(absl::Condition(
          +[](std::vector<std::unique_ptr<pqxx::connection>>* idle) { return !idle->empty(); },
          &idle_));
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
    // Puts the connection (or, when it broke, an empty slot) back.
    auto give_back = [&]() {
      if (conn != nullptr && !conn->is_open()) conn.reset();
      absl::MutexLock lock(&pool_mu_);
      idle_.push_back(std::move(conn));
    };
    if (conn == nullptr) {
      absl::StatusOr<std::unique_ptr<pqxx::connection>> fresh = Connect();
      if (!fresh.ok()) {
        give_back();
        return fresh.status();
      }
      conn = std::move(fresh).value();
    }
    absl::Status status;
    bool retry = false;
    try {
      pqxx::work txn(*conn);
      status = body(txn);
      if (status.ok()) txn.commit();
    } catch (const pqxx::in_doubt_error& e) {
      status = absl::UnavailableError(
          absl::StrCat("PostgreSQL connection lost during commit (outcome unknown): ", e.what()));
      conn.reset();
    } catch (const pqxx::broken_connection& e) {
      conn.reset();
      status = absl::UnavailableError(absl::StrCat("PostgreSQL connection lost: ", e.what()));
      retry = !reconnected;
      reconnected = true;
    } catch (const pqxx::statement_completion_unknown& e) {
      status = absl::UnavailableError(absl::StrCat("PostgreSQL: ", e.what()));
    } catch (const pqxx::transaction_rollback& e) {
      // Serialization failure or deadlock: the transaction was rolled back.
      status = absl::AbortedError(absl::StrCat("PostgreSQL: ", e.what()));
      retry = attempt < options_.max_attempts;
    } catch (const pqxx::sql_error& e) {
      status = SqlErrorStatus(e);
      if (!conn->is_open()) {
        conn.reset();
        status = absl::UnavailableError(status.message());
        retry = !reconnected;
        reconnected = true;
      }
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("PostgreSQL: ", e.what()));
      if (!conn->is_open()) {
        conn.reset();
        status = absl::UnavailableError(status.message());
      }
    }
    give_back();
    if (!retry) return status;
    absl::SleepFor(absl::Milliseconds(5 * attempt));
  }
}

absl::Status PostgresModelStore::CatalogTransact(
    const std::function<absl::Status(pqxx::work&)>& body) {
  absl::Status status = Transact([&](pqxx::work& txn) -> absl::Status {
    RETURN_IF_ERROR(body(txn));
    txn.exec("UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1");
    txn.exec(absl::StrCat("NOTIFY ", kCatalogChannel));
    return absl::OkStatus();
  });
  catalog_generation_.fetch_add(1, std::memory_order_release);
  return status;
}

namespace {

// Sets `heard` on every notification of the catalog channel (LISTENs on
// construction).
class CatalogReceiver : public pqxx::notification_receiver {
 public:
  CatalogReceiver(pqxx::connection& conn, bool* heard)
      : pqxx::notification_receiver(conn, kCatalogChannel), heard_(heard) {}
  void operator()(const std::string& /*payload*/, int /*backend_pid*/) override { *heard_ = true; }

 private:
  bool* const heard_;
};

}  // namespace

void PostgresModelStore::Listen(int64_t generation_at_open) {
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<CatalogReceiver> receiver;
  bool heard = false;
  int64_t last = generation_at_open;
  while (!stop_.HasBeenNotified()) {
    try {
      if (conn == nullptr) {
        absl::StatusOr<std::unique_ptr<pqxx::connection>> fresh = Connect();
        if (!fresh.ok()) {
          stop_.WaitForNotificationWithTimeout(options_.poll_interval);
          continue;
        }
        conn = std::move(fresh).value();
        receiver = std::make_unique<CatalogReceiver>(*conn, &heard);
      }
      int64_t generation = 0;
      {
        pqxx::nontransaction read(*conn);
        generation = read.exec("SELECT generation FROM catalog_generation WHERE id = 1")[0][0]
                         .as<int64_t>();
      }
      if (generation != last) {
        catalog_generation_.fetch_add(1, std::memory_order_release);
      }
      last = generation;
      // Until a notification or the poll interval, in slices so that the
      // destructor need not wait for a long interval.
      const absl::Time poll_at = absl::Now() + options_.poll_interval;
      heard = false;
      while (!stop_.HasBeenNotified() && !heard) {
        const int64_t wait_us = std::min<int64_t>(
            100000, absl::ToInt64Microseconds(poll_at - absl::Now()));
        if (wait_us <= 0) break;
        conn->await_notification(0, static_cast<long>(wait_us));
      }
    } catch (const std::exception& e) {
      BNSERVE_LOG(WARNING) << "catalog listener: " << e.what() << "; reconnecting";
      receiver.reset();
      conn.reset();
      // Changes may have been missed while disconnected: the next read
      // compares with `last`, which is kept.
      stop_.WaitForNotificationWithTimeout(options_.poll_interval);
    }
  }
}

absl::Status PostgresModelStore::Ping() {
  return Transact([](pqxx::work& txn) {
    txn.exec("SELECT 1");
    return absl::OkStatus();
  });
}

absl::StatusOr<int> PostgresModelStore::SchemaVersion() {
  int version = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) {
    version = txn.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0].as<int>();
    return absl::OkStatus();
  }));
  return version;
}

absl::StatusOr<int> PostgresModelStore::AddVersion(const v1::ModelVersion& version,
                                                   const v1::Job* finished_job) {
  if (version.model_name().empty()) {
    return absl::InvalidArgumentError("a model version needs a model name");
  }
  for (const v1::NamedTensor& named : version.tensors()) {
    RETURN_IF_ERROR(CheckNamedTensorShape(named));
  }
  v1::ModelVersion metadata = version;
  metadata.clear_tensors();
  metadata.clear_aliases();
  if (!metadata.has_created_at()) *metadata.mutable_created_at() = TimeToProto(absl::Now());

  int number = 0;
  RETURN_IF_ERROR(CatalogTransact([&](pqxx::work& txn) -> absl::Status {
    if (finished_job != nullptr && finished_job->job_id().empty()) {
      return absl::InvalidArgumentError("a job needs an id");
    }
    if (finished_job != nullptr && !finished_job->replica().empty()) {
      RETURN_IF_ERROR(CheckLease(txn, finished_job->job_id(), finished_job->replica()));
    }
    number = txn.exec_params1(
                    "INSERT INTO models (name, next_version) VALUES ($1, 2) "
                    "ON CONFLICT (name) DO UPDATE SET next_version = models.next_version + 1 "
                    "RETURNING next_version - 1",
                    version.model_name())[0]
                 .as<int>();
    metadata.set_version(number);
    txn.exec_params(
        "INSERT INTO versions (model_name, version, job_id, metadata) VALUES ($1, $2, $3, $4)",
        version.model_name(), number, version.job_id(), Bytes(Serialize(metadata)));
    for (int i = 0; i < version.tensors_size(); ++i) {
      const v1::NamedTensor& named = version.tensors(i);
      std::vector<int64_t> shape(named.tensor().shape().begin(), named.tensor().shape().end());
      txn.exec_params(
          "INSERT INTO tensors (model_name, version, ordinal, name, shape, data) "
          "VALUES ($1, $2, $3, $4, $5, $6)",
          version.model_name(), number, i, named.name(),
          Bytes(shape.data(), shape.size() * sizeof(int64_t)),
          Bytes(named.tensor().values().data(), named.tensor().values_size() * sizeof(float)));
    }
    if (finished_job != nullptr) {
      v1::Job job = *finished_job;
      job.set_model_version(number);
      RETURN_IF_ERROR(PutJobIn(txn, job, /*guard=*/false));  // guarded above
    }
    return absl::OkStatus();
  }));
  return number;
}

absl::StatusOr<v1::ModelVersion> PostgresModelStore::GetVersion(const std::string& model_name,
                                                                int version,
                                                                bool include_tensors) {
  v1::ModelVersion result;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    result.Clear();
    const pqxx::result meta = txn.exec_params(
        "SELECT metadata FROM versions WHERE model_name = $1 AND version = $2", model_name,
        version);
    if (meta.empty()) return NoSuchVersionError(model_name, version);
    RETURN_IF_ERROR(ParseField(meta[0][0], &result));
    for (const pqxx::row& row : txn.exec_params(
             "SELECT alias FROM aliases WHERE model_name = $1 AND version = $2 ORDER BY alias",
             model_name, version)) {
      result.add_aliases(row[0].as<std::string>());
    }
    if (!include_tensors) return absl::OkStatus();
    for (const pqxx::row& row : txn.exec_params(
             "SELECT name, shape, data FROM tensors WHERE model_name = $1 AND version = $2 "
             "ORDER BY ordinal",
             model_name, version)) {
      v1::NamedTensor* named = result.add_tensors();
      named->set_name(row[0].as<std::string>());
      const pqxx::binarystring shape(row[1]);
      const pqxx::binarystring values(row[2]);
      if (shape.size() % sizeof(int64_t) != 0 || values.size() % sizeof(float) != 0) {
        return absl::DataLossError(absl::StrCat("stored tensor \"", named->name(), "\" of ",
                                                model_name, " v", version, " is corrupt"));
      }
      const size_t dims = shape.size() / sizeof(int64_t);
      named->mutable_tensor()->mutable_shape()->Resize(static_cast<int>(dims), 0);
      if (dims > 0) {
        std::memcpy(named->mutable_tensor()->mutable_shape()->mutable_data(), shape.data(),
                    shape.size());
      }
      const size_t count = values.size() / sizeof(float);
      named->mutable_tensor()->mutable_values()->Resize(static_cast<int>(count), 0.0f);
      if (count > 0) {
        std::memcpy(named->mutable_tensor()->mutable_values()->mutable_data(), values.data(),
                    values.size());
      }
    }
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<int> PostgresModelStore::LatestVersion(const std::string& model_name) {
  int latest = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    const pqxx::row row = txn.exec_params1(
        "SELECT MAX(version) FROM versions WHERE model_name = $1", model_name);
    if (row[0].is_null()) {
      return absl::NotFoundError(absl::StrCat("model \"", model_name, "\" not found"));
    }
    latest = row[0].as<int>();
    return absl::OkStatus();
  }));
  return latest;
}

absl::StatusOr<int> PostgresModelStore::ResolveAlias(const std::string& model_name,
                                                     const std::string& alias) {
  int version = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    const pqxx::result r = txn.exec_params(
        "SELECT version FROM aliases WHERE model_name = $1 AND alias = $2", model_name, alias);
    if (r.empty()) {
      return absl::NotFoundError(
          absl::StrCat("model \"", model_name, "\" has no alias \"", alias, "\""));
    }
    version = r[0][0].as<int>();
    return absl::OkStatus();
  }));
  return version;
}

namespace {

// Every model with a version (only `only` when set), by name.
std::vector<v1::Model> ModelsIn(pqxx::work& txn, const std::string* only) {
  std::map<std::string, v1::Model> models;
  const pqxx::result versions =
      only != nullptr
          ? txn.exec_params(
                "SELECT model_name, version FROM versions WHERE model_name = $1 ORDER BY version",
                *only)
          : txn.exec("SELECT model_name, version FROM versions ORDER BY model_name, version");
  for (const pqxx::row& row : versions) {
    v1::Model& model = models[row[0].as<std::string>()];
    model.set_name(row[0].as<std::string>());
    model.add_versions(row[1].as<int>());
    model.set_latest_version(row[1].as<int>());
  }
  const pqxx::result aliases =
      only != nullptr
          ? txn.exec_params("SELECT model_name, alias, version FROM aliases WHERE model_name = $1",
                            *only)
          : txn.exec("SELECT model_name, alias, version FROM aliases");
  for (const pqxx::row& row : aliases) {
    auto it = models.find(row[0].as<std::string>());
    if (it == models.end()) continue;
    (*it->second.mutable_aliases())[row[1].as<std::string>()] = row[2].as<int>();
  }
  std::vector<v1::Model> result;
  for (auto& [name, model] : models) result.push_back(std::move(model));
  return result;
}

}  // namespace

absl::StatusOr<std::vector<v1::Model>> PostgresModelStore::ListModels() {
  std::vector<v1::Model> models;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) {
    models = ModelsIn(txn, nullptr);
    return absl::OkStatus();
  }));
  return models;
}

absl::StatusOr<v1::Model> PostgresModelStore::GetModel(const std::string& model_name) {
  std::vector<v1::Model> models;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) {
    models = ModelsIn(txn, &model_name);
    return absl::OkStatus();
  }));
  if (models.empty()) {
    return absl::NotFoundError(absl::StrCat("model \"", model_name, "\" not found"));
  }
  return std::move(models[0]);
}

absl::Status PostgresModelStore::DeleteVersion(const std::string& model_name, int version) {
  return CatalogTransact([&](pqxx::work& txn) -> absl::Status {
    if (txn.exec_params("SELECT 1 FROM versions WHERE model_name = $1 AND version = $2 "
                        "FOR UPDATE",
                        model_name, version)
            .empty()) {
      return NoSuchVersionError(model_name, version);
    }
    std::vector<std::string> aliases;
    for (const pqxx::row& row : txn.exec_params(
             "SELECT alias FROM aliases WHERE model_name = $1 AND version = $2 ORDER BY alias",
             model_name, version)) {
      aliases.push_back(row[0].as<std::string>());
    }
    if (!aliases.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("version ", version, " of \"", model_name,
                       "\" is still the target of alias(es) ", absl::StrJoin(aliases, ", "),
                       "; move or delete them first"));
    }
    txn.exec_params("DELETE FROM tensors WHERE model_name = $1 AND version = $2", model_name,
                    version);
    txn.exec_params("DELETE FROM versions WHERE model_name = $1 AND version = $2", model_name,
                    version);
    return absl::OkStatus();
  });
}

absl::Status PostgresModelStore::SetAlias(const std::string& model_name,
                                          const std::string& alias, int version) {
  return CatalogTransact([&](pqxx::work& txn) -> absl::Status {
    // FOR SHARE: a concurrent DeleteVersion (FOR UPDATE) waits, then sees the alias.
    if (txn.exec_params("SELECT 1 FROM versions WHERE model_name = $1 AND version = $2 "
                        "FOR SHARE",
                        model_name, version)
            .empty()) {
      return NoSuchVersionError(model_name, version);
    }
    txn.exec_params(
        "INSERT INTO aliases (model_name, alias, version) VALUES ($1, $2, $3) "
        "ON CONFLICT (model_name, alias) DO UPDATE SET version = EXCLUDED.version",
        model_name, alias, version);
    return absl::OkStatus();
  });
}

absl::Status PostgresModelStore::DeleteAlias(const std::string& model_name,
                                             const std::string& alias) {
  return CatalogTransact([&](pqxx::work& txn) -> absl::Status {
    const pqxx::result r = txn.exec_params(
        "DELETE FROM aliases WHERE model_name = $1 AND alias = $2", model_name, alias);
    if (r.affected_rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("model \"", model_name, "\" has no alias \"", alias, "\""));
    }
    return absl::OkStatus();
  });
}

std::optional<uint64_t> PostgresModelStore::CatalogGeneration() const {
  return catalog_generation_.load(std::memory_order_acquire);
}

absl::Status PostgresModelStore::PutJob(const v1::Job& job) {
  return Transact([&](pqxx::work& txn) { return PutJobIn(txn, job, /*guard=*/true); });
}

absl::Status PostgresModelStore::AppendEpochMetrics(const std::string& job_id,
                                                    const v1::EpochMetrics& metrics) {
  return Transact([&](pqxx::work& txn) {
    PutMetrics(txn, job_id, metrics);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<v1::Job>> PostgresModelStore::ListJobs() {
  std::vector<v1::Job> jobs;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    jobs.clear();
    std::map<std::string, size_t> index;
    for (const pqxx::row& row : txn.exec("SELECT job FROM jobs ORDER BY job_id")) {
      v1::Job job;
      RETURN_IF_ERROR(ParseField(row[0], &job));
      index[job.job_id()] = jobs.size();
      jobs.push_back(std::move(job));
    }
    for (const pqxx::row& row :
         txn.exec("SELECT job_id, metrics FROM job_metrics ORDER BY job_id, epoch")) {
      auto it = index.find(row[0].as<std::string>());
      if (it == index.end()) continue;
      RETURN_IF_ERROR(ParseField(row[1], jobs[it->second].add_epochs()));
    }
    return absl::OkStatus();
  }));
  return jobs;
}

absl::StatusOr<int> PostgresModelStore::FailUnfinishedJobs(const std::string& reason) {
  int marked = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    marked = 0;
    const google::protobuf::Timestamp now = TimeToProto(absl::Now());
    for (const pqxx::row& row : txn.exec_params(
             "SELECT job FROM jobs WHERE state IN ($1, $2) FOR UPDATE",
             static_cast<int>(v1::QUEUED), static_cast<int>(v1::RUNNING))) {
      v1::Job job;
      RETURN_IF_ERROR(ParseField(row[0], &job));
      job.set_state(v1::FAILED);
      job.set_reason(reason);
      *job.mutable_finished_at() = now;
      RETURN_IF_ERROR(PutJobIn(txn, job, /*guard=*/false));
      ++marked;
    }
    return absl::OkStatus();
  }));
  return marked;
}

absl::Status PostgresModelStore::PutSweep(const v1::Sweep& sweep) {
  if (sweep.sweep_id().empty()) return absl::InvalidArgumentError("a sweep needs an id");
  return Transact([&](pqxx::work& txn) {
    txn.exec_params(
        "INSERT INTO sweeps (sweep_id, sweep) VALUES ($1, $2) "
        "ON CONFLICT (sweep_id) DO UPDATE SET sweep = EXCLUDED.sweep",
        sweep.sweep_id(), Bytes(Serialize(sweep)));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<v1::Sweep>> PostgresModelStore::ListSweeps() {
  std::vector<v1::Sweep> sweeps;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    sweeps.clear();
    for (const pqxx::row& row : txn.exec("SELECT sweep FROM sweeps ORDER BY sweep_id")) {
      v1::Sweep sweep;
      RETURN_IF_ERROR(ParseField(row[0], &sweep));
      sweeps.push_back(std::move(sweep));
    }
    return absl::OkStatus();
  }));
  return sweeps;
}

// JobQueue.

absl::StatusOr<int64_t> PostgresModelStore::ReserveJobSeqs(int count) {
  if (count < 1) return absl::InvalidArgumentError("reserve at least one job sequence number");
  int64_t first = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) {
    // One nextval per number would interleave with other replicas'; the
    // advisory lock makes the block consecutive.
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kEnqueueLock + 1);
    first = txn.exec("SELECT nextval('job_seq')")[0][0].as<int64_t>();
    if (count > 1) {
      txn.exec_params("SELECT setval('job_seq', $1)", first + count - 1);
    }
    return absl::OkStatus();
  }));
  return first;
}

absl::StatusOr<int64_t> PostgresModelStore::QueuedJobCount() {
  int64_t count = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) {
    count = txn.exec_params1("SELECT count(*) FROM jobs WHERE state = $1",
                             static_cast<int>(v1::QUEUED))[0]
                .as<int64_t>();
    return absl::OkStatus();
  }));
  return count;
}

absl::Status PostgresModelStore::Enqueue(const std::vector<QueuedJob>& jobs,
                                         int64_t max_queued) {
  for (const QueuedJob& queued : jobs) {
    if (queued.job.job_id().empty()) return absl::InvalidArgumentError("a job needs an id");
  }
  if (jobs.empty()) return absl::OkStatus();
  return Transact([&](pqxx::work& txn) -> absl::Status {
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kEnqueueLock);
    if (max_queued >= 0) {
      const int64_t queued = txn.exec_params1("SELECT count(*) FROM jobs WHERE state = $1",
                                              static_cast<int>(v1::QUEUED))[0]
                                 .as<int64_t>();
      if (queued + static_cast<int64_t>(jobs.size()) > max_queued) {
        return absl::ResourceExhaustedError(
            absl::StrCat("the job queue is full: ", queued, " queued, at most ", max_queued));
      }
    }
    for (const QueuedJob& queued : jobs) {
      v1::Job job = queued.job;
      job.set_state(v1::QUEUED);
      job.clear_epochs();
      const pqxx::result r = txn.exec_params(
          "INSERT INTO jobs (job_id, seq, state, job, request) "
          "VALUES ($1, NULLIF($2, '')::bigint, $3, $4, $5) ON CONFLICT (job_id) DO NOTHING",
          job.job_id(), SeqOfJobId(job.job_id()), static_cast<int>(v1::QUEUED),
          Bytes(Serialize(job)), Bytes(Serialize(queued.full_request)));
      if (r.affected_rows() == 0) {
        return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " already exists"));
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<ClaimedJob>> PostgresModelStore::ClaimNext(
    const std::string& replica, absl::Duration lease) {
  if (replica.empty()) return absl::InvalidArgumentError("a claim needs a replica name");
  std::optional<ClaimedJob> claimed;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    claimed.reset();
    const pqxx::result r = txn.exec_params(
        "SELECT job_id, job, request, EXTRACT(EPOCH FROM now())::float8 FROM jobs "
        "WHERE state = $1 ORDER BY seq NULLS LAST, job_id FOR UPDATE SKIP LOCKED LIMIT 1",
        static_cast<int>(v1::QUEUED));
    if (r.empty()) return absl::OkStatus();
    ClaimedJob job;
    RETURN_IF_ERROR(ParseField(r[0][1], &job.job));
    if (!r[0][2].is_null()) RETURN_IF_ERROR(ParseField(r[0][2], &job.full_request));
    job.job.set_state(v1::RUNNING);
    job.job.set_replica(replica);
    *job.job.mutable_started_at() = DbTime(r[0][3]);
    txn.exec_params(
        "UPDATE jobs SET state = $2, replica = $3, "
        "lease_until = now() + $4::float8 * interval '1 second', job = $5 WHERE job_id = $1",
        job.job.job_id(), static_cast<int>(v1::RUNNING), replica, Seconds(lease),
        Bytes(Serialize(job.job)));
    RETURN_IF_ERROR(AttachEpochs(txn, &job.job));
    claimed = std::move(job);
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<LeaseRenewal> PostgresModelStore::RenewLease(const std::string& job_id,
                                                            const std::string& replica,
                                                            absl::Duration lease) {
  LeaseRenewal renewal;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    const pqxx::result r = txn.exec_params(
        "UPDATE jobs SET lease_until = now() + $3::float8 * interval '1 second' "
        "WHERE job_id = $1 AND state = $4 AND replica = $2 "
        "RETURNING cancel_requested, cancel_reason",
        job_id, replica, Seconds(lease), static_cast<int>(v1::RUNNING));
    if (r.empty()) {
      if (txn.exec_params("SELECT 1 FROM jobs WHERE job_id = $1", job_id).empty()) {
        return NoSuchJobError(job_id);
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "lease lost: job ", job_id, " is no longer RUNNING under replica ", replica));
    }
    renewal.cancel_requested = r[0][0].as<bool>();
    renewal.cancel_reason = r[0][1].as<std::string>();
    return absl::OkStatus();
  }));
  return renewal;
}

absl::StatusOr<v1::Job> PostgresModelStore::RequestCancel(const std::string& job_id,
                                                          const std::string& reason) {
  v1::Job job;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    job.Clear();
    const pqxx::result r =
        txn.exec_params("SELECT state, job FROM jobs WHERE job_id = $1 FOR UPDATE", job_id);
    if (r.empty()) return NoSuchJobError(job_id);
    RETURN_IF_ERROR(ParseField(r[0][1], &job));
    const int state = r[0][0].as<int>();
    if (state == v1::QUEUED) {
      job.set_state(v1::CANCELLED);
      job.set_reason(reason);
      *job.mutable_finished_at() = TimeToProto(absl::Now());
      txn.exec_params(
          "UPDATE jobs SET state = $2, job = $3, request = NULL, cancel_requested = TRUE, "
          "cancel_reason = $4 WHERE job_id = $1",
          job_id, static_cast<int>(v1::CANCELLED), Bytes(Serialize(job)), reason);
    } else if (state == v1::RUNNING) {
      txn.exec_params(
          "UPDATE jobs SET cancel_requested = TRUE, cancel_reason = $2 WHERE job_id = $1",
          job_id, reason);
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " already finished (",
          v1::JobState_Name(static_cast<v1::JobState>(state)), ")"));
    }
    return AttachEpochs(txn, &job);
  }));
  return job;
}

absl::StatusOr<std::vector<v1::Job>> PostgresModelStore::ReapExpiredLeases(
    const std::string& reason) {
  std::vector<v1::Job> reaped;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    reaped.clear();
    const pqxx::result r = txn.exec_params(
        "SELECT job, EXTRACT(EPOCH FROM now())::float8 FROM jobs "
        "WHERE state = $1 AND lease_until < now() ORDER BY seq FOR UPDATE SKIP LOCKED",
        static_cast<int>(v1::RUNNING));
    for (const pqxx::row& row : r) {
      v1::Job job;
      RETURN_IF_ERROR(ParseField(row[0], &job));
      job.set_state(v1::FAILED);
      job.set_reason(reason);
      *job.mutable_finished_at() = DbTime(row[1]);
      txn.exec_params(
          "UPDATE jobs SET state = $2, job = $3, request = NULL, lease_until = NULL "
          "WHERE job_id = $1",
          job.job_id(), static_cast<int>(v1::FAILED), Bytes(Serialize(job)));
      RETURN_IF_ERROR(AttachEpochs(txn, &job));
      reaped.push_back(std::move(job));
    }
    return absl::OkStatus();
  }));
  return reaped;
}

absl::StatusOr<v1::Job> PostgresModelStore::GetJob(const std::string& job_id) {
  v1::Job job;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    job.Clear();
    const pqxx::result r = txn.exec_params("SELECT job FROM jobs WHERE job_id = $1", job_id);
    if (r.empty()) return NoSuchJobError(job_id);
    RETURN_IF_ERROR(ParseField(r[0][0], &job));
    return AttachEpochs(txn, &job);
  }));
  return job;
}

absl::StatusOr<std::vector<v1::EpochMetrics>> PostgresModelStore::EpochsAfter(
    const std::string& job_id, int after_epoch) {
  std::vector<v1::EpochMetrics> epochs;
  RETURN_IF_ERROR(Transact([&](pqxx::work& txn) -> absl::Status {
    ASSIGN_OR_RETURN(epochs, MetricsIn(txn, job_id, after_epoch));
    return absl::OkStatus();
  }));
  return epochs;
}

}  // namespace bnserve
