// PostgresModelStore: the ModelStore and the shared JobQueue on one
// PostgreSQL database, which several bnserve replicas open at once.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PostgresModelStore> store,
//                    PostgresModelStore::Open("postgresql://bnserve@db:5432/bnserve", {}));
//
// Storage: version metadata, jobs and sweeps as serialized protos (bytea);
// each tensor as its shape (int64s) and its raw float bytes (bytea), so
// parameters read back bit-exactly. Version numbers come from a per-model
// `next_version` counter row that every registration increments with
// INSERT ... ON CONFLICT DO UPDATE ... RETURNING (row-locked), so they are
// never reused, after a delete or under concurrent registration from any
// number of replicas.
//
// Schema: created and migrated by Open in versioned steps recorded in
// `schema_migrations`, under pg_advisory_xact_lock, so replicas that start
// together migrate once.
//
// Connections: a pool of Options::connections connections; each call borrows
// one (waiting while all are busy) for one transaction. Every connection
// has `statement_timeout` set. A transaction that fails with a
// serialization failure or deadlock (SQLSTATE 40001/40P01) is retried up to
// Options::max_attempts times; a broken connection is dropped and the call
// retried once on a new one. Errors map to absl codes: the database
// unreachable or the connection lost: Unavailable; a statement timeout:
// DeadlineExceeded; a duplicate job id in Enqueue: AlreadyExists; others
// Internal.
//
// Catalog generation across processes: every catalog-changing transaction
// (AddVersion, DeleteVersion, SetAlias, DeleteAlias) increments the row of
// `catalog_generation` and sends NOTIFY bnserve_catalog. A listener thread
// (its own connection, LISTEN) wakes on the notification, and otherwise
// every Options::poll_interval (250 ms) re-reads the row; whenever the row
// changed it advances CatalogGeneration(). A change committed by another
// replica is therefore seen within one poll interval plus a query's round
// trip (well under 1 s) while the database is reachable; this store's own
// writes advance it at once.
//
// Jobs (JobQueue): rows of `jobs` with state, seq, replica, lease_until
// (the database's now(), so replica clocks do not matter),
// cancel_requested/cancel_reason, the serialized Job and, until the job
// finishes, the full request. Lease guard: PutJob and AddVersion with a job
// whose `replica` is set and whose state is not QUEUED fail with
// FailedPrecondition "lease lost ..." (storing nothing) unless the stored
// job is RUNNING under that replica.
//
// Thread-safety: thread-safe; calls run concurrently on pooled connections.
#ifndef BNSERVE_SERVER_POSTGRES_MODEL_STORE_H_
#define BNSERVE_SERVER_POSTGRES_MODEL_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/job_queue.h"
#include "server/model_store.h"

namespace bnserve {

class PostgresModelStore : public ModelStore, public JobQueue {
 public:
  struct Options {
    // Pooled connections (>= 1).
    int connections = 4;
    // statement_timeout of every connection.
    absl::Duration statement_timeout = absl::Seconds(30);
    // Attempts of a transaction that hits a serialization failure or deadlock.
    int max_attempts = 5;
    // How often the listener re-reads the catalog generation row without a
    // notification.
    absl::Duration poll_interval = absl::Milliseconds(250);
    // libpq's connect_timeout, unless the URL sets one.
    absl::Duration connect_timeout = absl::Seconds(5);
  };

  // True for a postgresql:// or postgres:// URL.
  static bool IsPostgresUrl(const std::string& url);

  // `url` with the password (postgresql://user:PASSWORD@...) replaced by
  // "***", for logs; anything else unchanged.
  static std::string RedactedUrl(const std::string& url);

  // Connects to `url` (libpq's URI syntax: postgresql://user@host:port/db),
  // creates or migrates the schema and starts the listener. Unavailable when
  // the database cannot be reached; InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<PostgresModelStore>> Open(const std::string& url,
                                                                  Options options);

  // Stops the listener and closes every connection.
  ~PostgresModelStore() override;

  PostgresModelStore(const PostgresModelStore&) = delete;
  PostgresModelStore& operator=(const PostgresModelStore&) = delete;

  // SELECT 1 on a pooled connection (reconnecting it if needed): OK while the
  // database answers, Unavailable otherwise.
  absl::Status Ping();

  // The schema version Open migrated to.
  absl::StatusOr<int> SchemaVersion();

  // ModelStore.
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
  JobQueue* SharedJobQueue() override { return this; }
  absl::Status PutSweep(const v1::Sweep& sweep) override;
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override;

  // JobQueue.
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
  PostgresModelStore(std::string conninfo, Options options);

  // A new connection with this store's session settings.
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect() const;

  // Runs `body` in one transaction on a pooled connection: commits when it
  // returns OK, rolls back otherwise; retries as the header says. Every
  // database call goes through here.
  absl::Status Transact(const std::function<absl::Status(pqxx::work&)>& body);
  // Transact for a catalog change: bumps the generation row and notifies in
  // the same transaction, and advances catalog_generation_ afterwards,
  // whatever the outcome.
  absl::Status CatalogTransact(const std::function<absl::Status(pqxx::work&)>& body);

  // The listener thread's loop; `generation_at_open` is the generation row
  // as Open read it.
  void Listen(int64_t generation_at_open);

  const std::string conninfo_;
  const Options options_;

  absl::Mutex pool_mu_;
  // Idle connections (null: to be (re)connected on borrow).
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(pool_mu_);

  std::atomic<uint64_t> catalog_generation_{0};
  absl::Notification stop_;
  std::thread listener_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_POSTGRES_MODEL_STORE_H_
