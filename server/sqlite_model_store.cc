#include "server/sqlite_model_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY,
  next_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
  model_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  metadata BLOB NOT NULL,
  PRIMARY KEY (model_name, version)
);
CREATE TABLE IF NOT EXISTS tensors (
  model_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  name TEXT NOT NULL,
  shape BLOB NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (model_name, version, ordinal)
);
CREATE TABLE IF NOT EXISTS aliases (
  model_name TEXT NOT NULL,
  alias TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (model_name, alias)
);
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY,
  state INTEGER NOT NULL,
  job BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS job_metrics (
  job_id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  metrics BLOB NOT NULL,
  PRIMARY KEY (job_id, epoch)
);
-- Added with sweeps: a registry made before them gets the table when it is
-- next opened (every table is created IF NOT EXISTS); nothing else changed.
CREATE TABLE IF NOT EXISTS sweeps (
  sweep_id TEXT PRIMARY KEY,
  sweep BLOB NOT NULL
);
)sql";

// The shared job queue (JobQueue), added after sweeps: a registry made
// before it gets the tables when it is next opened; the jobs table is
// unchanged. A row per enqueued job: its sequence number, the full request
// (inline data included) until the job finishes, and while it runs the
// replica holding it, the lease's end (Unix microseconds) and a cancel
// request. job_seq holds the next sequence number to hand out.
constexpr char kJobQueueSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS job_queue (
  job_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  request BLOB,
  replica TEXT,
  lease_until INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  cancel_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS job_queue_by_seq ON job_queue (seq);
CREATE TABLE IF NOT EXISTS job_seq (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  next INTEGER NOT NULL
);
)sql";

std::string Serialize(const google::protobuf::MessageLite& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  return bytes;
}

// The room kept on the registry's file system for the last state of the jobs
// that are running when the disk fills (a job row and its metrics take a few
// pages of the WAL each).
constexpr off_t kReserveBytes = 256 * 1024;

// Makes the reserve file at `path` if it is missing; a failure (the disk is
// full already) is only logged.
void MakeReserve(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && st.st_size >= kReserveBytes) return;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  const int error = fd < 0 ? errno : posix_fallocate(fd, 0, kReserveBytes);
  if (fd >= 0) close(fd);
  if (error != 0) {
    unlink(path.c_str());
    BNSERVE_LOG(WARNING) << "cannot reserve " << kReserveBytes << " bytes at " << path
                         << " for the last state of jobs when the disk fills: "
                         << std::strerror(error);
  }
}

// The NotFound for a version that is not stored.
absl::Status NoSuchVersionError(const std::string& model_name, int version) {
  return absl::NotFoundError(absl::StrCat("model \"", model_name, "\" has no version ", version));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteModelStore>> SqliteModelStore::Open(
    const std::string& path, Durability durability) {
  // Missing directories are created owner-only, one component at a time.
  std::filesystem::path prefix;
  for (const std::filesystem::path& part : std::filesystem::path(path).parent_path()) {
    prefix /= part;
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create directory ", prefix.string(), ": ",
                                              std::strerror(errno)));
    }
  }
  ASSIGN_OR_RETURN(RegistryLock lock, RegistryLock::Acquire(path));
  // A new database file is owner-only: it holds every model's parameters.
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open database ", path, ": ", std::strerror(errno)));
  }
  close(fd);
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("cannot open database ", path, ": ", message));
  }
  const std::string reserve_path = path + "-reserve";
  MakeReserve(reserve_path);
  std::unique_ptr<SqliteModelStore> store(
      new SqliteModelStore(db, std::move(lock), reserve_path));
  {
    absl::MutexLock lock(&store->mu_);
    sqlite3_busy_timeout(db, 5000);
    RETURN_IF_ERROR(SqliteExec(db, "PRAGMA journal_mode=WAL"));
    RETURN_IF_ERROR(SqliteExec(db, durability == Durability::kFull ? "PRAGMA synchronous=FULL"
                                                                   : "PRAGMA synchronous=NORMAL"));
    RETURN_IF_ERROR(SqliteExec(db, kSchema));
    RETURN_IF_ERROR(SqliteExec(db, kJobQueueSchema));
  }
  return store;
}

SqliteModelStore::SqliteModelStore(sqlite3* db, RegistryLock lock, std::string reserve_path)
    : db_(db), lock_(std::move(lock)), reserve_path_(std::move(reserve_path)) {}

bool SqliteModelStore::ReleaseReserveLocked() {
  if (unlink(reserve_path_.c_str()) != 0) return false;
  BNSERVE_LOG(WARNING) << "registry disk full: deleted the reserve " << reserve_path_
                       << " to store the state of a job; free disk space";
  return true;
}

SqliteModelStore::~SqliteModelStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
  if (sqlite3_close(db_) != SQLITE_OK) {
    BNSERVE_LOG(ERROR) << "closing the database failed: " << sqlite3_errmsg(db_);
  }
  db_ = nullptr;
}

absl::StatusOr<int> SqliteModelStore::SynchronousMode() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement pragma, Prepare("PRAGMA synchronous"));
  int mode = -1;
  RETURN_IF_ERROR(pragma.ForEachRow([&] {
    mode = static_cast<int>(pragma.Int(0));
    return absl::OkStatus();
  }));
  return mode;
}

absl::StatusOr<SqliteStatement> SqliteModelStore::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return SqliteStatement(db_, it->second);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
      SQLITE_OK) {
    return SqliteError(db_, sql);
  }
  statements_.emplace(sql, stmt);
  return SqliteStatement(db_, stmt);
}

absl::Status SqliteModelStore::CatalogWrite(const std::function<absl::Status()>& body) {
  absl::Status status = SqliteTransaction(db_, body);
  catalog_generation_.fetch_add(1, std::memory_order_release);
  return status;
}

absl::StatusOr<int> SqliteModelStore::AddVersion(const v1::ModelVersion& version,
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

  absl::MutexLock lock(&mu_);
  int number = 0;
  RETURN_IF_ERROR(CatalogWrite([&]() -> absl::Status {
    if (finished_job != nullptr) RETURN_IF_ERROR(CheckLeaseLocked(*finished_job));
    {
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT next_version FROM models WHERE name = ?"));
      select.Bind(1, version.model_name());
      ASSIGN_OR_RETURN(bool found, select.Step());
      number = found ? static_cast<int>(select.Int(0)) : 1;
    }
    {
      ASSIGN_OR_RETURN(SqliteStatement upsert,
                       Prepare("INSERT OR REPLACE INTO models (name, next_version) VALUES (?, ?)"));
      upsert.Bind(1, version.model_name()).Bind(2, int64_t{number} + 1);
      RETURN_IF_ERROR(upsert.Run());
    }
    metadata.set_version(number);
    {
      ASSIGN_OR_RETURN(SqliteStatement insert,
                       Prepare("INSERT INTO versions (model_name, version, job_id, metadata) "
                               "VALUES (?, ?, ?, ?)"));
      const std::string bytes = Serialize(metadata);
      insert.Bind(1, version.model_name()).Bind(2, int64_t{number}).Bind(3, version.job_id());
      insert.BindBlob(4, bytes.data(), bytes.size());
      RETURN_IF_ERROR(insert.Run());
    }
    for (int i = 0; i < version.tensors_size(); ++i) {
      const v1::NamedTensor& named = version.tensors(i);
      ASSIGN_OR_RETURN(SqliteStatement insert,
                       Prepare("INSERT INTO tensors (model_name, version, ordinal, name, "
                               "shape, data) VALUES (?, ?, ?, ?, ?, ?)"));
      std::vector<int64_t> shape(named.tensor().shape().begin(), named.tensor().shape().end());
      insert.Bind(1, version.model_name()).Bind(2, int64_t{number}).Bind(3, int64_t{i});
      insert.Bind(4, named.name());
      insert.BindBlob(5, shape.data(), shape.size() * sizeof(int64_t));
      insert.BindBlob(6, named.tensor().values().data(),
                      named.tensor().values_size() * sizeof(float));
      RETURN_IF_ERROR(insert.Run());
    }
    if (finished_job != nullptr) {
      v1::Job job = *finished_job;
      job.set_model_version(number);
      RETURN_IF_ERROR(PutJobLocked(job));
    }
    return absl::OkStatus();
  }));
  return number;
}

absl::StatusOr<v1::ModelVersion> SqliteModelStore::GetVersion(const std::string& model_name,
                                                              int version,
                                                              bool include_tensors) {
  absl::MutexLock lock(&mu_);
  v1::ModelVersion result;
  {
    ASSIGN_OR_RETURN(SqliteStatement select,
                     Prepare("SELECT metadata FROM versions WHERE model_name = ? AND version = ?"));
    select.Bind(1, model_name).Bind(2, int64_t{version});
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return NoSuchVersionError(model_name, version);
    RETURN_IF_ERROR(select.Parse(0, &result));
  }
  {
    ASSIGN_OR_RETURN(std::vector<std::string> aliases, AliasesOfLocked(model_name, version));
    for (std::string& alias : aliases) result.add_aliases(std::move(alias));
  }
  if (include_tensors) {
    ASSIGN_OR_RETURN(SqliteStatement select,
                     Prepare("SELECT name, shape, data FROM tensors WHERE model_name = ? AND "
                             "version = ? ORDER BY ordinal"));
    select.Bind(1, model_name).Bind(2, int64_t{version});
    RETURN_IF_ERROR(select.ForEachRow([&]() -> absl::Status {
      v1::NamedTensor* named = result.add_tensors();
      named->set_name(select.Text(0));
      auto [shape_data, shape_bytes] = select.Blob(1);
      auto [values_data, values_bytes] = select.Blob(2);
      if (shape_bytes % sizeof(int64_t) != 0 || values_bytes % sizeof(float) != 0) {
        return absl::DataLossError(absl::StrCat("stored tensor \"", named->name(), "\" of ",
                                                model_name, " v", version, " is corrupt"));
      }
      const size_t dims = shape_bytes / sizeof(int64_t);
      named->mutable_tensor()->mutable_shape()->Resize(static_cast<int>(dims), 0);
      if (dims > 0) {
        std::memcpy(named->mutable_tensor()->mutable_shape()->mutable_data(), shape_data,
                    shape_bytes);
      }
      const size_t count = values_bytes / sizeof(float);
      named->mutable_tensor()->mutable_values()->Resize(static_cast<int>(count), 0.0f);
      if (count > 0) {
        std::memcpy(named->mutable_tensor()->mutable_values()->mutable_data(), values_data,
                    values_bytes);
      }
      return absl::OkStatus();
    }));
  }
  return result;
}

absl::StatusOr<int> SqliteModelStore::LatestVersion(const std::string& model_name) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT MAX(version) FROM versions WHERE model_name = ?"));
  select.Bind(1, model_name);
  ASSIGN_OR_RETURN(bool found, select.Step());
  if (!found || select.IsNull(0)) {
    return absl::NotFoundError(absl::StrCat("model \"", model_name, "\" not found"));
  }
  return static_cast<int>(select.Int(0));
}

absl::StatusOr<int> SqliteModelStore::ResolveAlias(const std::string& model_name,
                                                   const std::string& alias) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT version FROM aliases WHERE model_name = ? AND alias = ?"));
  select.Bind(1, model_name).Bind(2, alias);
  ASSIGN_OR_RETURN(bool found, select.Step());
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("model \"", model_name, "\" has no alias \"", alias, "\""));
  }
  return static_cast<int>(select.Int(0));
}

absl::StatusOr<v1::Model> SqliteModelStore::GetModelLocked(const std::string& model_name) {
  v1::Model model;
  model.set_name(model_name);
  {
    ASSIGN_OR_RETURN(SqliteStatement select,
                     Prepare("SELECT version FROM versions WHERE model_name = ? ORDER BY version"));
    select.Bind(1, model_name);
    RETURN_IF_ERROR(select.ForEachRow([&]() -> absl::Status {
      model.add_versions(static_cast<int>(select.Int(0)));
      return absl::OkStatus();
    }));
  }
  if (model.versions_size() == 0) {
    return absl::NotFoundError(absl::StrCat("model \"", model_name, "\" not found"));
  }
  model.set_latest_version(model.versions(model.versions_size() - 1));
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT alias, version FROM aliases WHERE model_name = ?"));
  select.Bind(1, model_name);
  RETURN_IF_ERROR(select.ForEachRow([&]() -> absl::Status {
    (*model.mutable_aliases())[select.Text(0)] = static_cast<int>(select.Int(1));
    return absl::OkStatus();
  }));
  return model;
}

absl::StatusOr<v1::Model> SqliteModelStore::GetModel(const std::string& model_name) {
  absl::MutexLock lock(&mu_);
  return GetModelLocked(model_name);
}

absl::StatusOr<std::vector<v1::Model>> SqliteModelStore::ListModels() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  {
    ASSIGN_OR_RETURN(SqliteStatement select,
                     Prepare("SELECT DISTINCT model_name FROM versions ORDER BY model_name"));
    RETURN_IF_ERROR(select.ForEachRow([&]() -> absl::Status {
      names.push_back(select.Text(0));
      return absl::OkStatus();
    }));
  }
  std::vector<v1::Model> models;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(v1::Model model, GetModelLocked(name));
    models.push_back(std::move(model));
  }
  return models;
}

absl::Status SqliteModelStore::RequireVersionLocked(const std::string& model_name,
                                                    int version) {
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT 1 FROM versions WHERE model_name = ? AND version = ?"));
  select.Bind(1, model_name).Bind(2, int64_t{version});
  ASSIGN_OR_RETURN(bool exists, select.Step());
  return exists ? absl::OkStatus() : NoSuchVersionError(model_name, version);
}

absl::StatusOr<std::vector<std::string>> SqliteModelStore::AliasesOfLocked(
    const std::string& model_name, int version) {
  std::vector<std::string> aliases;
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT alias FROM aliases WHERE model_name = ? AND version = ? "
                           "ORDER BY alias"));
  select.Bind(1, model_name).Bind(2, int64_t{version});
  RETURN_IF_ERROR(select.ForEachRow([&]() -> absl::Status {
    aliases.push_back(select.Text(0));
    return absl::OkStatus();
  }));
  return aliases;
}

absl::Status SqliteModelStore::DeleteVersion(const std::string& model_name, int version) {
  absl::MutexLock lock(&mu_);
  return CatalogWrite([&]() -> absl::Status {
    RETURN_IF_ERROR(RequireVersionLocked(model_name, version));
    ASSIGN_OR_RETURN(std::vector<std::string> aliases, AliasesOfLocked(model_name, version));
    if (!aliases.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("version ", version, " of \"", model_name,
                       "\" is still the target of alias(es) ", absl::StrJoin(aliases, ", "),
                       "; move or delete them first"));
    }
    {
      ASSIGN_OR_RETURN(SqliteStatement del,
                       Prepare("DELETE FROM tensors WHERE model_name = ? AND version = ?"));
      del.Bind(1, model_name).Bind(2, int64_t{version});
      RETURN_IF_ERROR(del.Run());
    }
    ASSIGN_OR_RETURN(SqliteStatement del,
                     Prepare("DELETE FROM versions WHERE model_name = ? AND version = ?"));
    del.Bind(1, model_name).Bind(2, int64_t{version});
    return del.Run();
  });
}

absl::Status SqliteModelStore::SetAlias(const std::string& model_name,
                                        const std::string& alias, int version) {
  absl::MutexLock lock(&mu_);
  return CatalogWrite([&]() -> absl::Status {
    RETURN_IF_ERROR(RequireVersionLocked(model_name, version));
    ASSIGN_OR_RETURN(SqliteStatement upsert,
                     Prepare("INSERT OR REPLACE INTO aliases (model_name, alias, version) "
                             "VALUES (?, ?, ?)"));
    upsert.Bind(1, model_name).Bind(2, alias).Bind(3, int64_t{version});
    return upsert.Run();
  });
}

absl::Status SqliteModelStore::DeleteAlias(const std::string& model_name,
                                           const std::string& alias) {
  absl::MutexLock lock(&mu_);
  return CatalogWrite([&]() -> absl::Status {
    ASSIGN_OR_RETURN(SqliteStatement del,
                     Prepare("DELETE FROM aliases WHERE model_name = ? AND alias = ?"));
    del.Bind(1, model_name).Bind(2, alias);
    RETURN_IF_ERROR(del.Run());
    if (sqlite3_changes(db_) == 0) {
      return absl::NotFoundError(
          absl::StrCat("model \"", model_name, "\" has no alias \"", alias, "\""));
    }
    return absl::OkStatus();
  });
}

std::optional<uint64_t> SqliteModelStore::CatalogGeneration() const {
  return catalog_generation_.load(std::memory_order_acquire);
}

absl::Status SqliteModelStore::PutMetricsLocked(const std::string& job_id,
                                                const v1::EpochMetrics& metrics) {
  ASSIGN_OR_RETURN(SqliteStatement upsert,
                   Prepare("INSERT OR REPLACE INTO job_metrics (job_id, epoch, metrics) "
                           "VALUES (?, ?, ?)"));
  const std::string bytes = Serialize(metrics);
  upsert.Bind(1, job_id).Bind(2, int64_t{metrics.epoch()});
  upsert.BindBlob(3, bytes.data(), bytes.size());
  return upsert.Run();
}

absl::Status SqliteModelStore::PutJobLocked(const v1::Job& job) {
  if (job.job_id().empty()) return absl::InvalidArgumentError("a job needs an id");
  v1::Job stored = job;
  stored.clear_epochs();
  const std::string bytes = Serialize(stored);
  {
    ASSIGN_OR_RETURN(SqliteStatement upsert,
                     Prepare("INSERT OR REPLACE INTO jobs (job_id, state, job) VALUES (?, ?, ?)"));
    upsert.Bind(1, job.job_id()).Bind(2, int64_t{job.state()});
    upsert.BindBlob(3, bytes.data(), bytes.size());
    RETURN_IF_ERROR(upsert.Run());
  }
  for (const v1::EpochMetrics& metrics : job.epochs()) {
    RETURN_IF_ERROR(PutMetricsLocked(job.job_id(), metrics));
  }
  return absl::OkStatus();
}

absl::Status SqliteModelStore::PutJob(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  const auto put = [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckLeaseLocked(job));
    return PutJobLocked(job);
  };
  absl::Status status = SqliteTransaction(db_, put);
  if (status.code() == absl::StatusCode::kResourceExhausted && ReleaseReserveLocked()) {
    status = SqliteTransaction(db_, put);
  }
  return status;
}

absl::Status SqliteModelStore::AppendEpochMetrics(const std::string& job_id,
                                                  const v1::EpochMetrics& metrics) {
  absl::MutexLock lock(&mu_);
  return PutMetricsLocked(job_id, metrics);
}

absl::StatusOr<std::vector<v1::EpochMetrics>> SqliteModelStore::MetricsLocked(
    const std::string& job_id) {
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT metrics FROM job_metrics WHERE job_id = ? ORDER BY epoch"));
  select.Bind(1, job_id);
  return select.ParseEachRow<v1::EpochMetrics>(0);
}

absl::StatusOr<std::vector<v1::Job>> SqliteModelStore::ListJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> jobs;
  {
    ASSIGN_OR_RETURN(SqliteStatement select, Prepare("SELECT job FROM jobs ORDER BY job_id"));
    ASSIGN_OR_RETURN(jobs, select.ParseEachRow<v1::Job>(0));
  }
  for (v1::Job& job : jobs) {
    ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> metrics, MetricsLocked(job.job_id()));
    for (v1::EpochMetrics& m : metrics) *job.add_epochs() = std::move(m);
  }
  return jobs;
}

absl::StatusOr<int> SqliteModelStore::FailUnfinishedJobs(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  int marked = 0;
  RETURN_IF_ERROR(SqliteTransaction(db_, [&]() -> absl::Status {
    std::vector<v1::Job> unfinished;
    {
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT job FROM jobs WHERE state IN (?, ?)"));
      select.Bind(1, int64_t{v1::QUEUED}).Bind(2, int64_t{v1::RUNNING});
      ASSIGN_OR_RETURN(unfinished, select.ParseEachRow<v1::Job>(0));
    }
    const google::protobuf::Timestamp now = TimeToProto(absl::Now());
    for (v1::Job& job : unfinished) {
      job.set_state(v1::FAILED);
      job.set_reason(reason);
      *job.mutable_finished_at() = now;
      RETURN_IF_ERROR(PutJobLocked(job));
    }
    marked = static_cast<int>(unfinished.size());
    return absl::OkStatus();
  }));
  return marked;
}

absl::Status SqliteModelStore::PutSweep(const v1::Sweep& sweep) {
  if (sweep.sweep_id().empty()) return absl::InvalidArgumentError("a sweep needs an id");
  const std::string bytes = Serialize(sweep);
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement upsert,
                   Prepare("INSERT OR REPLACE INTO sweeps (sweep_id, sweep) VALUES (?, ?)"));
  upsert.Bind(1, sweep.sweep_id());
  upsert.BindBlob(2, bytes.data(), bytes.size());
  return upsert.Run();
}

absl::StatusOr<std::vector<v1::Sweep>> SqliteModelStore::ListSweeps() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT sweep FROM sweeps ORDER BY sweep_id"));
  return select.ParseEachRow<v1::Sweep>(0);
}

// ---------------------------------------------------------------------------
// JobQueue: the shared job queue (server/job_queue.h) and its lease guard.

namespace {

bool IsTerminalState(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

absl::Status LeaseLostError(const std::string& job_id, const std::string& replica) {
  return absl::FailedPreconditionError(absl::StrCat(
      "lease lost: job ", job_id, " is no longer running under replica \"", replica, "\""));
}

}  // namespace

absl::StatusOr<std::optional<v1::Job>> SqliteModelStore::FindJobLocked(
    const std::string& job_id) {
  v1::Job job;
  {
    ASSIGN_OR_RETURN(SqliteStatement select, Prepare("SELECT job FROM jobs WHERE job_id = ?"));
    select.Bind(1, job_id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return std::optional<v1::Job>();
    RETURN_IF_ERROR(select.Parse(0, &job));
  }
  ASSIGN_OR_RETURN(std::vector<v1::EpochMetrics> metrics, MetricsLocked(job_id));
  for (v1::EpochMetrics& m : metrics) *job.add_epochs() = std::move(m);
  return std::optional<v1::Job>(std::move(job));
}

absl::Status SqliteModelStore::CheckLeaseLocked(const v1::Job& job) {
  if (job.replica().empty() || !IsTerminalState(job.state())) return absl::OkStatus();
  {
    ASSIGN_OR_RETURN(SqliteStatement select,
                     Prepare("SELECT j.state, q.replica FROM jobs j JOIN job_queue q "
                             "ON q.job_id = j.job_id WHERE j.job_id = ?"));
    select.Bind(1, job.job_id());
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found || select.Int(0) != v1::RUNNING || select.IsNull(1) ||
        select.Text(1) != job.replica()) {
      return LeaseLostError(job.job_id(), job.replica());
    }
  }
  ASSIGN_OR_RETURN(SqliteStatement release,
                   Prepare("UPDATE job_queue SET request = NULL WHERE job_id = ?"));
  release.Bind(1, job.job_id());
  return release.Run();
}

absl::StatusOr<int64_t> SqliteModelStore::ReserveJobSeqs(int count) {
  if (count < 1) return absl::InvalidArgumentError("reserve at least one job sequence number");
  absl::MutexLock lock(&mu_);
  int64_t first = 1;
  RETURN_IF_ERROR(SqliteTransaction(db_, [&]() -> absl::Status {
    {
      ASSIGN_OR_RETURN(SqliteStatement select, Prepare("SELECT next FROM job_seq WHERE id = 1"));
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (found) first = select.Int(0);
    }
    {
      // Jobs stored without the queue (a registry used by a local queue
      // before) keep their numbers too.
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT MAX(CAST(substr(job_id, 5) AS INTEGER)) FROM jobs "
                               "WHERE job_id LIKE 'job-%'"));
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (found && !select.IsNull(0)) first = std::max(first, select.Int(0) + 1);
    }
    ASSIGN_OR_RETURN(SqliteStatement upsert,
                     Prepare("INSERT OR REPLACE INTO job_seq (id, next) VALUES (1, ?)"));
    upsert.Bind(1, first + count);
    return upsert.Run();
  }));
  return first;
}

absl::StatusOr<int64_t> SqliteModelStore::QueuedJobCount() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT COUNT(*) FROM job_queue q JOIN jobs j ON j.job_id = q.job_id "
                           "WHERE j.state = ?"));
  select.Bind(1, int64_t{v1::QUEUED});
  ASSIGN_OR_RETURN(bool found, select.Step());
  return found ? select.Int(0) : 0;
}

absl::Status SqliteModelStore::Enqueue(const std::vector<QueuedJob>& jobs, int64_t max_queued) {
  for (const QueuedJob& queued : jobs) {
    if (queued.job.job_id().empty()) return absl::InvalidArgumentError("a job needs an id");
  }
  absl::MutexLock lock(&mu_);
  return SqliteTransaction(db_, [&]() -> absl::Status {
    if (max_queued >= 0) {
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT COUNT(*) FROM job_queue q JOIN jobs j "
                               "ON j.job_id = q.job_id WHERE j.state = ?"));
      select.Bind(1, int64_t{v1::QUEUED});
      ASSIGN_OR_RETURN(bool found, select.Step());
      const int64_t waiting = found ? select.Int(0) : 0;
      if (waiting + static_cast<int64_t>(jobs.size()) > max_queued) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the training queue is full: ", waiting, " jobs waiting of at most ", max_queued,
            ", no room for ", jobs.size(), " more; nothing was submitted, retry later"));
      }
    }
    for (const QueuedJob& queued : jobs) {
      const std::string& job_id = queued.job.job_id();
      {
        ASSIGN_OR_RETURN(SqliteStatement select, Prepare("SELECT 1 FROM jobs WHERE job_id = ?"));
        select.Bind(1, job_id);
        ASSIGN_OR_RETURN(bool exists, select.Step());
        if (exists) return absl::AlreadyExistsError(absl::StrCat("job ", job_id, " exists"));
      }
      int64_t seq = 0;
      if (job_id.rfind("job-", 0) != 0 || !absl::SimpleAtoi(job_id.substr(4), &seq)) {
        return absl::InvalidArgumentError(absl::StrCat("job id ", job_id, " is not job-N"));
      }
      RETURN_IF_ERROR(PutJobLocked(queued.job));
      ASSIGN_OR_RETURN(SqliteStatement insert,
                       Prepare("INSERT OR REPLACE INTO job_queue (job_id, seq, request) "
                               "VALUES (?, ?, ?)"));
      const std::string request = Serialize(queued.full_request);
      insert.Bind(1, job_id).Bind(2, seq).BindBlob(3, request.data(), request.size());
      RETURN_IF_ERROR(insert.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<ClaimedJob>> SqliteModelStore::ClaimNext(
    const std::string& replica, absl::Duration lease) {
  if (replica.empty()) return absl::InvalidArgumentError("claiming a job needs a replica id");
  absl::MutexLock lock(&mu_);
  std::optional<ClaimedJob> claimed;
  RETURN_IF_ERROR(SqliteTransaction(db_, [&]() -> absl::Status {
    ClaimedJob next;
    {
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT j.job, q.request FROM job_queue q JOIN jobs j "
                               "ON j.job_id = q.job_id WHERE j.state = ? AND q.request IS NOT "
                               "NULL ORDER BY q.seq LIMIT 1"));
      select.Bind(1, int64_t{v1::QUEUED});
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (!found) return absl::OkStatus();
      RETURN_IF_ERROR(select.Parse(0, &next.job));
      RETURN_IF_ERROR(select.Parse(1, &next.full_request));
    }
    next.job.set_state(v1::RUNNING);
    next.job.set_replica(replica);
    *next.job.mutable_started_at() = TimeToProto(absl::Now());
    RETURN_IF_ERROR(PutJobLocked(next.job));
    ASSIGN_OR_RETURN(SqliteStatement update,
                     Prepare("UPDATE job_queue SET replica = ?, lease_until = ?, "
                             "cancel_requested = 0, cancel_reason = '' WHERE job_id = ?"));
    update.Bind(1, replica).Bind(2, NowMicros() + absl::ToInt64Microseconds(lease));
    update.Bind(3, next.job.job_id());
    RETURN_IF_ERROR(update.Run());
    claimed = std::move(next);
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<LeaseRenewal> SqliteModelStore::RenewLease(const std::string& job_id,
                                                          const std::string& replica,
                                                          absl::Duration lease) {
  absl::MutexLock lock(&mu_);
  LeaseRenewal renewal;
  RETURN_IF_ERROR(SqliteTransaction(db_, [&]() -> absl::Status {
    {
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT j.state, q.replica, q.cancel_requested, q.cancel_reason "
                               "FROM jobs j LEFT JOIN job_queue q ON q.job_id = j.job_id "
                               "WHERE j.job_id = ?"));
      select.Bind(1, job_id);
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (!found) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
      if (select.Int(0) != v1::RUNNING || select.IsNull(1) || select.Text(1) != replica) {
        return LeaseLostError(job_id, replica);
      }
      renewal.cancel_requested = select.Int(2) != 0;
      renewal.cancel_reason = select.Text(3);
    }
    ASSIGN_OR_RETURN(SqliteStatement update,
                     Prepare("UPDATE job_queue SET lease_until = ? WHERE job_id = ?"));
    update.Bind(1, NowMicros() + absl::ToInt64Microseconds(lease)).Bind(2, job_id);
    return update.Run();
  }));
  return renewal;
}

absl::StatusOr<v1::Job> SqliteModelStore::RequestCancel(const std::string& job_id,
                                                        const std::string& reason) {
  absl::MutexLock lock(&mu_);
  v1::Job result;
  RETURN_IF_ERROR(SqliteTransaction(db_, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<v1::Job> job, FindJobLocked(job_id));
    if (!job.has_value()) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
    if (IsTerminalState(job->state())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " already finished (", v1::JobState_Name(job->state()), ")"));
    }
    if (job->state() == v1::QUEUED) {
      job->set_state(v1::CANCELLED);
      job->set_reason(reason);
      *job->mutable_finished_at() = TimeToProto(absl::Now());
      RETURN_IF_ERROR(PutJobLocked(*job));
      ASSIGN_OR_RETURN(SqliteStatement release,
                       Prepare("UPDATE job_queue SET request = NULL WHERE job_id = ?"));
      release.Bind(1, job_id);
      RETURN_IF_ERROR(release.Run());
    } else {
      ASSIGN_OR_RETURN(SqliteStatement update,
                       Prepare("UPDATE job_queue SET cancel_requested = 1, cancel_reason = ? "
                               "WHERE job_id = ?"));
      update.Bind(1, reason).Bind(2, job_id);
      RETURN_IF_ERROR(update.Run());
    }
    result = *std::move(job);
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::vector<v1::Job>> SqliteModelStore::ReapExpiredLeases(
    const std::string& reason) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> reaped;
  RETURN_IF_ERROR(SqliteTransaction(db_, [&]() -> absl::Status {
    std::vector<std::string> expired;
    {
      ASSIGN_OR_RETURN(SqliteStatement select,
                       Prepare("SELECT j.job_id FROM jobs j JOIN job_queue q "
                               "ON q.job_id = j.job_id WHERE j.state = ? AND q.lease_until < ?"));
      select.Bind(1, int64_t{v1::RUNNING}).Bind(2, NowMicros());
      RETURN_IF_ERROR(select.ForEachRow([&]() -> absl::Status {
        expired.push_back(select.Text(0));
        return absl::OkStatus();
      }));
    }
    const google::protobuf::Timestamp now = TimeToProto(absl::Now());
    for (const std::string& job_id : expired) {
      ASSIGN_OR_RETURN(std::optional<v1::Job> job, FindJobLocked(job_id));
      if (!job.has_value()) continue;
      job->set_state(v1::FAILED);
      job->set_reason(reason);
      *job->mutable_finished_at() = now;
      RETURN_IF_ERROR(PutJobLocked(*job));
      ASSIGN_OR_RETURN(SqliteStatement release,
                       Prepare("UPDATE job_queue SET request = NULL WHERE job_id = ?"));
      release.Bind(1, job_id);
      RETURN_IF_ERROR(release.Run());
      reaped.push_back(*std::move(job));
    }
    return absl::OkStatus();
  }));
  return reaped;
}

absl::StatusOr<v1::Job> SqliteModelStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::optional<v1::Job> job, FindJobLocked(job_id));
  if (!job.has_value()) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
  return *std::move(job);
}

absl::StatusOr<std::vector<v1::EpochMetrics>> SqliteModelStore::EpochsAfter(
    const std::string& job_id, int after_epoch) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStatement select,
                   Prepare("SELECT metrics FROM job_metrics WHERE job_id = ? AND epoch > ? "
                           "ORDER BY epoch"));
  select.Bind(1, job_id).Bind(2, int64_t{after_epoch});
  return select.ParseEachRow<v1::EpochMetrics>(0);
}

}  // namespace bnserve
