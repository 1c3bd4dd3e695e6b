// JobManager: training jobs — a bounded queue, a fixed pool of worker
// threads, per-job event logs for watchers, persistence of every change.
//
//   JobManager jobs(&store, &catalog, &data, options);
//   RETURN_IF_ERROR(jobs.Start());          // restores jobs, starts workers
//   ASSIGN_OR_RETURN(v1::Job job, jobs.Submit(request));   // QUEUED at once
//   jobs.Shutdown("server shutting down");  // cancels, joins the workers
//
// A job goes QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED (a queued
// job may go straight to CANCELLED). Submit turns the request into a
// TrainingPlan (server/training_plan.h: parsed, defaulted and validated once,
// no file read) and the job keeps it; the worker resolves the data, completes
// the network with the data's input size and trains. Training runs only on
// the worker threads, never on the caller's. Each finished epoch is appended
// to the job, stored, and delivered to watchers; a successful job registers
// its trained network (ModelCatalog::RegisterNetwork: no re-parsing) as the
// next version of its model in the same transaction that stores the job's
// final state. Cancellation sets a flag that the Trainer checks before
// every iteration, so a running job stops within one iteration.
//
// Every job keeps its event log (QUEUED, RUNNING, each epoch, the final job);
// Watch() replays it and then delivers new events as they happen, in order.
//
// Memory: every unfinished job stays in memory, and at most
// max_finished_jobs_in_memory finished ones (the most recent); Get, List and
// Watch read older jobs from the store. In the local mode the inline data of
// queued jobs count against max_queued_data_bytes.
//
// Shared mode (JobManagerOptions::shared_queue set, e.g. several replicas on
// one PostgreSQL registry): there is no queue in memory. Submit plans and
// validates as always, reserves ids and enqueues the jobs with their full
// requests in the shared queue (max_queue holds across replicas). Idle
// workers claim the next job every poll_interval (and at once after a Submit
// here), re-plan it from its full request and train it under this replica's
// lease. A lease keeper thread renews the leases of this replica's running
// jobs every poll_interval, learns of cancel requests made on any replica,
// stops a job whose lease was lost (it registers nothing: the store refuses),
// reaps the expired leases of dead replicas ("worker lost") and polls the
// store for watchers of jobs running elsewhere. Get, List, Cancel and Watch
// work for the jobs of every replica (the store answers for the others).
// Start does not fail unfinished jobs (other replicas are running them);
// Shutdown cancels this replica's running jobs and leaves the others alone.
//
// Thread-safety: thread-safe. Watch callbacks run with the manager's lock
// held, on whichever thread produced the event: they must be quick, must not
// block and must not call back into the JobManager.
#ifndef BNSERVE_SERVER_JOB_MANAGER_H_
#define BNSERVE_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bnserve/v1/training_service.pb.h"
#include "core/network.h"
#include "absl/time/time.h"
#include "server/data_resolver.h"
#include "server/job_queue.h"
#include "server/model_catalog.h"
#include "server/model_store.h"
#include "server/training_plan.h"

namespace bnserve {

// One epoch a worker finished (JobManagerOptions::on_epoch_finished).
struct FinishedEpoch {
  std::string job_id;
  std::string model_name;
  int epoch = 0;  // 1-based
  // The rows that went through a gradient step (RowsPerEpoch: the training
  // set without the remainder that fills no batch).
  int64_t rows = 0;
  // Wall time of the epoch, its accuracy evaluation included
  // (EpochMetrics::seconds).
  double seconds = 0;
};

// The jobs a JobManager ran or restored at start, by state, at one instant
// (JobManager::Stats()): the finished ones count on after they leave memory
// (max_finished_jobs_in_memory). With a shared queue they are the jobs this
// replica submitted or ran, and `queued` and `queue_depth` count every
// replica's.
struct JobStats {
  int64_t queued = 0;
  int64_t running = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
  // Jobs waiting in the queue (equal to `queued`), and its bound max_queue.
  int64_t queue_depth = 0;
  int64_t queue_capacity = 0;
};

struct JobManagerOptions {
  // Training worker threads, >= 1.
  int workers = 1;
  // Queued (not yet running) jobs beyond which Submit is ResourceExhausted.
  int max_queue = 64;
  // Largest allowed TrainRequest.epochs (JobLimits::max_epochs).
  int max_epochs = 200;
  // Largest working memory of one job (JobLimits::max_job_bytes: the
  // EstimateTrainingBytes of its network and effective batch) beyond which
  // Submit is ResourceExhausted, or the job fails when its data show it.
  int64_t max_job_bytes = int64_t{4} << 30;
  // When set, called after every finished epoch of every job, on the
  // worker's thread and without the manager's lock (the server's metrics
  // count epochs and rows with it). It must be thread-safe and quick.
  std::function<void(const FinishedEpoch&)> on_epoch_finished;
  // Finished jobs kept in memory (the most recent); older ones are read from
  // the store. >= 0.
  int max_finished_jobs_in_memory = 1000;
  // Local mode: the inline data (serialized bytes) of queued jobs beyond
  // which Submit is ResourceExhausted (--max_queued_data_mb).
  int64_t max_queued_data_bytes = int64_t{1024} << 20;
  // Shared mode: the queue several replicas share (not owned), or nullptr
  // for a queue in memory. With it, `replica_id` (non-empty) names this
  // replica in the jobs it runs, `lease` is how long a claimed job stays
  // this replica's without a renewal, and `poll_interval` how often idle
  // workers look for jobs, leases are renewed and remote watches polled
  // (well under `lease`).
  JobQueue* shared_queue = nullptr;
  std::string replica_id;
  absl::Duration lease = absl::Seconds(10);
  absl::Duration poll_interval = absl::Milliseconds(250);
};

class JobManager {
 public:
  using WatchCallback = std::function<void(const v1::JobEvent&)>;
  using WatchId = uint64_t;

  // The pointers must outlive the manager.
  JobManager(ModelStore* store, ModelCatalog* catalog, DataResolver* data,
             JobManagerOptions options);
  // Shutdown("server shutting down") if not done yet.
  ~JobManager();

  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Marks jobs the store still has as QUEUED or RUNNING FAILED ("interrupted
  // by restart"), loads every stored job, and starts the workers. Call once.
  absl::Status Start();

  // Plans `request` (PlanTraining) and queues a job. InvalidArgument for a
  // bad name, config, hyperparameter or data spec; ResourceExhausted when the
  // queue is full or the job would need more than max_job_bytes as far as
  // its sizes are known; Unavailable after Shutdown. Data-dependent problems
  // found when the data are loaded (e.g. a feature count that does not match
  // input_size, or the memory at the data's real size) fail the job instead.
  // `created_by` (who submitted it) is recorded in the job and the version.
  absl::StatusOr<v1::Job> Submit(const v1::TrainRequest& request,
                                 const std::string& created_by = "");

  // Submits several jobs at once, all or none (a sweep's grid): plans every
  // request first, then queues them together, in order, with consecutive
  // ids. Returns the jobs, QUEUED. The errors are Submit's, and nothing is
  // queued on any of them: InvalidArgument or ResourceExhausted for the
  // first request that fails to plan, its message prefixed with the
  // request's description (or "request <i>") and ": "; ResourceExhausted
  // when the queue has no room for all of them; Unavailable after Shutdown;
  // a store error when a job cannot be stored (the ones stored before it
  // are stored FAILED, never run). InvalidArgument for no request.
  absl::StatusOr<std::vector<v1::Job>> SubmitAll(const std::vector<v1::TrainRequest>& requests,
                                                 const std::string& created_by = "");

  // NotFound for an unknown id.
  absl::StatusOr<v1::Job> Get(const std::string& job_id);

  // Newest first, filtered and paged as ListJobsRequest documents.
  // InvalidArgument for a negative page size or a bad page token.
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request);

  // Cancels a queued job at once, or asks a running one to stop (it becomes
  // CANCELLED within one iteration). Returns the job. NotFound for an unknown
  // id; FailedPrecondition if it already finished.
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);

  // Calls `on_event` with each event of the job so far and then with every
  // new one until (and including) the terminal `finished` event. Returns an
  // id for Unwatch (0 when the job had already finished: nothing to remove).
  // NotFound for an unknown id.
  absl::StatusOr<WatchId> Watch(const std::string& job_id, WatchCallback on_event);

  // The jobs by state and the queue, counted under the manager's lock.
  JobStats Stats();

  // Stops delivering events to a watcher. After it returns, its callback is
  // not running and will not be called again.
  void Unwatch(const std::string& job_id, WatchId id);

  // Stops accepting jobs, cancels queued and running jobs with `reason`, and
  // joins the workers. Idempotent.
  void Shutdown(const std::string& reason = "server shutting down");

 private:
  struct JobRecord {
    int64_t seq = 0;
    v1::Job job;  // the current state, epochs included
    // The job's plan, inline data included, until the job finishes. Only
    // the job's worker reads it once the job runs.
    std::unique_ptr<const TrainingPlan> plan;
    std::vector<v1::JobEvent> events;
    std::map<WatchId, WatchCallback> watchers;
    std::atomic<bool> cancel_requested{false};
    std::string cancel_reason;
    // Local mode, while queued: the serialized size of its inline data.
    int64_t queued_data_bytes = 0;
    // Shared mode: the lease keeper found the lease lost (reaped); the
    // worker is registering the final state (renewals stop).
    bool lease_lost = false;
    bool finishing = false;
  };
  // A watch of a job this replica does not hold (shared mode, or a finished
  // job no longer in memory), fed by polling the store.
  struct RemoteWatch {
    std::string job_id;
    WatchCallback callback;
    bool running_delivered = false;
    int last_epoch = 0;
  };

  // A request planned by PlanTraining, and the request as the job keeps it.
  struct PlannedJob {
    TrainingPlan plan;
    v1::TrainRequest recorded;
    const v1::TrainRequest* full = nullptr;  // the caller's request
  };
  // Stores and queues `planned` as new jobs (Submit, SubmitAll).
  absl::StatusOr<std::vector<v1::Job>> QueueAll(std::vector<PlannedJob> planned,
                                                const std::string& created_by);

  // Shared mode: QueueAll through the shared queue.
  absl::StatusOr<std::vector<v1::Job>> EnqueueShared(std::vector<PlannedJob> planned,
                                                     const std::string& created_by);
  bool shared() const { return options_.shared_queue != nullptr; }
  // A job from the store (shared queue or ModelStore::ListJobs).
  absl::StatusOr<v1::Job> StoredJob(const std::string& job_id);
  // Drops the oldest finished jobs beyond max_finished_jobs_in_memory.
  void TrimFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shared mode: claims a job and makes it this replica's running record,
  // or nullptr (none queued, or it failed to plan).
  std::shared_ptr<JobRecord> ClaimShared();
  // Shared mode: renews leases, reaps, polls remote watches until stopping.
  void LeaseKeeperLoop();
  void RenewLeases();
  void PollRemoteWatches();
  // A remote watch of a job this replica now holds (it claimed the job after
  // the Watch) becomes one of the record's watchers, after the record's
  // events it has not seen: the store may be ahead of this replica's own
  // record (a version registered, the record not yet SUCCEEDED). False when
  // the job is not held here.
  bool HandOverLocked(WatchId id, RemoteWatch* watch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void WorkerLoop();
  void RunJob(const std::shared_ptr<JobRecord>& record);
  // Appends an event to the log and hands it to every watcher.
  void PublishLocked(JobRecord* record, v1::JobEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores the job's current state, logging a failure.
  void PersistLocked(const JobRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets a terminal state, stores it, and publishes the `finished` event.
  void FinishLocked(JobRecord* record, v1::JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(JobRecord* record, v1::JobState state, const std::string& reason);
  // A successful job: registers its trained network with `metadata` (job id,
  // final metrics) and the final job state.
  void Succeed(JobRecord* record, const Network<float>& network, v1::ModelVersion metadata);

  ModelStore* const store_;
  ModelCatalog* const catalog_;
  DataResolver* const data_;
  const JobManagerOptions options_;
  const JobLimits limits_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string stop_reason_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  WatchId next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Every job by seq (ascending = oldest first) and by id.
  std::map<int64_t, std::shared_ptr<JobRecord>> jobs_by_seq_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<JobRecord>> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<JobRecord>> queue_ ABSL_GUARDED_BY(mu_);
  // Local mode: the sum of the queued records' queued_data_bytes.
  int64_t queued_data_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Finished records in memory, oldest first (TrimFinishedLocked).
  std::deque<int64_t> finished_seqs_ ABSL_GUARDED_BY(mu_);
  // Whether any job of the store is not in memory (then List reads it).
  bool evicted_ ABSL_GUARDED_BY(mu_) = false;
  // Finished jobs dropped from memory, by state (Stats still counts them).
  JobStats evicted_stats_ ABSL_GUARDED_BY(mu_);
  // The highest seq dropped from memory: every job above it is in memory.
  int64_t max_evicted_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Shared mode: a Submit here wakes the idle workers.
  int64_t claim_wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<WatchId, RemoteWatch> remote_watches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
  std::thread lease_keeper_;
  absl::Mutex shutdown_mu_;  // serializes Shutdown (joining) calls
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_JOB_MANAGER_H_
