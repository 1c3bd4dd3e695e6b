// SqliteModelStore: the ModelStore on one SQLite3 database file.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<SqliteModelStore> store,
//                    SqliteModelStore::Open("var/bnserve.db"));
//
// The database runs in WAL mode with a busy timeout. Version metadata and jobs
// and sweeps are stored as serialized protos; each tensor as its shape (int64s) and its
// raw float bytes, so parameters read back bit-exactly. Every multi-statement
// change runs in one transaction (rolled back on any error), and input is
// validated before anything is written. Statements are prepared once and
// reused (server/sqlite_statement.h wraps the SQLite calls).
//
// It also implements JobQueue (server/job_queue.h) in SQL, in transactions:
// a job_queue table next to the jobs holds each enqueued job's sequence
// number, full request, replica, lease and cancel request. SharedJobQueue()
// stays nullptr: one process owns a SQLite file and keeps its queue in
// memory; the queue is there for tests of several JobManagers sharing one
// store in one process, and as the reference for other backends. The lease
// guard of job_queue.h applies to PutJob and AddVersion: a terminal job
// whose `replica` is set is refused (FailedPrecondition "lease lost") unless
// it is still RUNNING under that replica.
//
// A full disk is RESOURCE_EXHAUSTED "registry disk full" on every write
// (statements, BEGIN and COMMIT alike), an I/O error UNAVAILABLE. So that a
// job can still record how it ended when the disk fills, Open keeps a small
// preallocated reserve file next to the database (PATH-reserve, 256 KiB):
// a PutJob that finds the disk full deletes it and tries once more. The next
// Open makes it again when there is room.
//
// Thread-safety: thread-safe; one connection serialized by a mutex.
#ifndef BNSERVE_SERVER_SQLITE_MODEL_STORE_H_
#define BNSERVE_SERVER_SQLITE_MODEL_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/model_store.h"
#include "server/registry_lock.h"
#include "server/sqlite_statement.h"

struct sqlite3;
struct sqlite3_stmt;

namespace bnserve {

class SqliteModelStore : public ModelStore, public JobQueue {
 public:
  // Opens (creating if needed, with its parent directories) the database at
  // `path` and its schema. A new directory is created 0700 and a new
  // database file 0600 (SQLite gives its -wal and -shm files the database's
  // mode). The registry is held by this store alone (RegistryLock):
  // FailedPrecondition "registry PATH is in use by pid N" while another
  // store, in this process or another, has it open. Internal (or Unavailable
  // when SQLite reports it busy) on other failures.
  //
  // Durability: WAL with synchronous=NORMAL (kNormal) survives a crash of
  // the process at any point; a power loss or kernel crash may lose the
  // last transactions committed before it (never corrupt the file).
  // kFull (synchronous=FULL) syncs the WAL at every commit, so a committed
  // version or job state survives a power loss too, at a few milliseconds
  // per write.
  enum class Durability { kNormal, kFull };
  static absl::StatusOr<std::unique_ptr<SqliteModelStore>> Open(
      const std::string& path, Durability durability = Durability::kNormal);

  // The connection's PRAGMA synchronous (1 NORMAL, 2 FULL).
  absl::StatusOr<int> SynchronousMode();

  // Finalizes every statement and closes the database.
  ~SqliteModelStore() override;

  SqliteModelStore(const SqliteModelStore&) = delete;
  SqliteModelStore& operator=(const SqliteModelStore&) = delete;

  absl::StatusOr<int> AddVersion(const v1::ModelVersion& version,
                                 const v1::Job* finished_job) override;
  absl::StatusOr<v1::ModelVersion> GetVersion(const std::string& model_name, int version,
                                              bool include_tensors) override;
  absl::StatusOr<int> LatestVersion(const std::string& model_name) override;
  absl::StatusOr<int> ResolveAlias(const std::string& model_name,
                                   const std::string& alias) override;
  absl::StatusOr<std::vector<v1::Model>> ListModels() override;
  absl::StatusOr<v1::Model> GetModel(const std::string& model_name) override;
  absl::Status DeleteVersion(const std::string& model_name, int version) override;
  absl::Status SetAlias(const std::string& model_name, const std::string& alias,
                        int version) override;
  absl::Status DeleteAlias(const std::string& model_name, const std::string& alias) override;
  std::optional<uint64_t> CatalogGeneration() const override;
  absl::Status PutJob(const v1::Job& job) override;
  absl::Status AppendEpochMetrics(const std::string& job_id,
                                  const v1::EpochMetrics& metrics) override;
  absl::StatusOr<std::vector<v1::Job>> ListJobs() override;
  absl::StatusOr<int> FailUnfinishedJobs(const std::string& reason) override;
  absl::Status PutSweep(const v1::Sweep& sweep) override;
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override;

  // JobQueue (server/job_queue.h).
  absl::StatusOr<int64_t> ReserveJobSeqs(int count) override;
  absl::StatusOr<int64_t> QueuedJobCount() override;
  absl::Status Enqueue(const std::vector<QueuedJob>& jobs, int64_t max_queued) override;
  absl::StatusOr<std::optional<ClaimedJob>> ClaimNext(const std::string& replica,
                                                      absl::Duration lease) override;
  absl::StatusOr<LeaseRenewal> RenewLease(const std::string& job_id, const std::string& replica,
                                          absl::Duration lease) override;
  absl::StatusOr<v1::Job> RequestCancel(const std::string& job_id,
                                        const std::string& reason) override;
  absl::StatusOr<std::vector<v1::Job>> ReapExpiredLeases(const std::string& reason) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<v1::EpochMetrics>> EpochsAfter(const std::string& job_id,
                                                            int after_epoch) override;

 private:
  SqliteModelStore(sqlite3* db, RegistryLock lock, std::string reserve_path);

  // Deletes the reserve file; true if there was one to delete.
  bool ReleaseReserveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The cached prepared statement for `sql` (prepared on first use), reset
  // and unbound when the returned SqliteStatement goes out of scope.
  absl::StatusOr<SqliteStatement> Prepare(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status PutJobLocked(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutMetricsLocked(const std::string& job_id, const v1::EpochMetrics& metrics)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK if `version` of `model_name` is stored, else NotFound.
  absl::Status RequireVersionLocked(const std::string& model_name, int version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The aliases that point at `version` of `model_name`, sorted; empty if none
  // (whether or not the version exists).
  absl::StatusOr<std::vector<std::string>> AliasesOfLocked(const std::string& model_name,
                                                           int version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Model> GetModelLocked(const std::string& model_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<v1::EpochMetrics>> MetricsLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The lease guard (job_queue.h): OK unless `job` is terminal, names a
  // replica, and is not RUNNING under that replica in the store
  // (FailedPrecondition "lease lost"). When it passes for a leased job, the
  // job's queue row lets go of its request. Inside a transaction.
  absl::Status CheckLeaseLocked(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A stored job with its epochs, or nullopt.
  absl::StatusOr<std::optional<v1::Job>> FindJobLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Runs a change of the versions or aliases (`body`, under mu_) and then
  // advances catalog_generation_, whatever the outcome: every catalog write
  // goes through here, so the generation cannot miss one.
  absl::Status CatalogWrite(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  // Advanced (release) after each catalog write; read (acquire) without mu_.
  std::atomic<uint64_t> catalog_generation_{0};
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  // Released after the database is closed (member order).
  RegistryLock lock_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
  const std::string reserve_path_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_SQLITE_MODEL_STORE_H_
