// SweepManager: training sweeps — one request that trains a grid of jobs
// (for the book's figure 6-18, 16 weight scales x BatchNorm on and off),
// kept under one sweep id, watched and cancelled as a whole, and read back
// as a table of its points.
//
//   SweepManager sweeps(&store, &jobs, SweepManagerOptions());
//   RETURN_IF_ERROR(sweeps.Start());   // after jobs.Start(): restores sweeps
//   ASSIGN_OR_RETURN(v1::Sweep sweep, sweeps.StartSweep(request, "alice"));
//   ASSIGN_OR_RETURN(v1::Sweep table, sweeps.Get(sweep.sweep_id()));
//
// A sweep is the cartesian product of its axes (weight_init_stds ->
// WeightInit{STD, s}, use_batchnorm, learning_rates; an empty axis is the
// base's value) applied to `base`, in grid order: weight_init_stds
// outermost, then use_batchnorm, then learning_rates. Its points are plain
// jobs of the JobManager, submitted all or none (JobManager::SubmitAll: each
// point's TrainRequest is planned as Train plans it, and the queue must take
// them all). Each point's job has the description "<sweep id> point <i>/<n>:
// <values>" (after the base's description, if any), so every point of a
// successful sweep registers one version of base.model_name whose
// description names its point.
//
// The store keeps what does not change (the request, with inline data
// reduced to their shapes, and each point's values and job id); Get and List
// build each point's state, epochs, version and reason from its job's
// current state, so a restart keeps the sweeps as it keeps the jobs (the
// interrupted ones come back FAILED).
//
// Thread-safety: thread-safe. Watch callbacks run with the JobManager's lock
// held (JobManager::Watch): they must be quick, must not block and must not
// call back into the SweepManager or the JobManager.
#ifndef BNSERVE_SERVER_SWEEP_MANAGER_H_
#define BNSERVE_SERVER_SWEEP_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bnserve/v1/training_service.pb.h"
#include "server/job_manager.h"
#include "server/model_store.h"

namespace bnserve {

struct SweepManagerOptions {
  // Largest number of points of one sweep; more is InvalidArgument.
  int max_points = 256;
  // The job queue replicas share (ModelStore::SharedJobQueue), or null.
  // When set, sweep numbers are reserved from its sequence (so two replicas
  // never issue the same sweep id; the job numbers skip the ones sweeps
  // take), and a sweep another replica started is read from the store when
  // this one does not know it (Get, Cancel, Watch) and before every List.
  JobQueue* shared_queue = nullptr;
};

class SweepManager {
 public:
  using WatchCallback = std::function<void(const v1::SweepEvent&)>;
  using WatchId = uint64_t;

  // The pointers must outlive the manager.
  SweepManager(ModelStore* store, JobManager* jobs, SweepManagerOptions options);
  // Removes every watch still registered.
  ~SweepManager();

  SweepManager(const SweepManager&) = delete;
  SweepManager& operator=(const SweepManager&) = delete;

  // Loads every stored sweep. Call once, after the JobManager's Start.
  absl::Status Start();

  // Expands `request` into its grid and submits every point's job at once.
  // Returns the sweep, its points QUEUED. InvalidArgument for a value that
  // is not finite and > 0 (a weight std or learning rate), more than
  // max_points points, or a point's request that Train would refuse (the
  // message names the point); ResourceExhausted when the queue cannot take
  // every point (nothing is submitted then) or a point would need too much
  // memory; Unavailable after the JobManager's Shutdown. `created_by` is
  // recorded in the sweep and its jobs.
  absl::StatusOr<v1::Sweep> StartSweep(const v1::StartSweepRequest& request,
                                       const std::string& created_by = "");

  // The sweep with every point's current job state. NotFound for an unknown
  // id.
  absl::StatusOr<v1::Sweep> Get(const std::string& sweep_id);

  // Newest first, paged as ListSweepsRequest documents. InvalidArgument for
  // a negative page size or a bad page token.
  absl::StatusOr<v1::ListSweepsResponse> List(const v1::ListSweepsRequest& request);

  // Cancels every point's job that has not finished (JobManager::Cancel: a
  // queued one at once, a running one within one iteration) and returns the
  // sweep. NotFound for an unknown id; a sweep already finished is returned
  // as it is.
  absl::StatusOr<v1::Sweep> Cancel(const std::string& sweep_id);

  // Calls `on_event` with every event of every point's job: first each job's
  // history (point by point, in grid order), then the live events as they
  // happen, each tagged with its point and job id; then, once every job has
  // ended, one last event whose `finished` is the whole sweep (which may
  // come before Watch returns, when every job had ended already). Returns
  // an id for Unwatch. NotFound for an unknown id.
  absl::StatusOr<WatchId> Watch(const std::string& sweep_id, WatchCallback on_event);

  // Stops delivering events to a watcher. After it returns, its callback is
  // not running and will not be called again. Unknown ids are ignored.
  void Unwatch(WatchId id);

 private:
  struct SweepRecord {
    int64_t seq = 0;
    // As stored: the request, each point's values and job id.
    v1::Sweep sweep;
  };
  struct WatchState;

  // `stored` with each point's job state filled in from the JobManager.
  // REQUIRES: mu_ not held (it calls into the JobManager).
  v1::Sweep WithJobStates(const v1::Sweep& stored);
  // The stored sweep `sweep_id`, or NotFound.
  absl::StatusOr<v1::Sweep> Stored(const std::string& sweep_id);
  // Adds the sweeps in `stored` that this manager does not hold yet.
  void AddStoredLocked(std::vector<v1::Sweep> stored) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With a shared queue: reads the store's sweeps and adds the ones other
  // replicas started. REQUIRES: mu_ not held.
  absl::Status ReloadShared();

  ModelStore* const store_;
  JobManager* const jobs_;
  const SweepManagerOptions options_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  WatchId next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, std::shared_ptr<SweepRecord>> sweeps_by_seq_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<SweepRecord>> sweeps_ ABSL_GUARDED_BY(mu_);
  std::map<WatchId, std::shared_ptr<WatchState>> watches_ ABSL_GUARDED_BY(mu_);
  // Serializes StartSweep: a sweep id is taken only once its jobs are in.
  absl::Mutex start_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_SWEEP_MANAGER_H_
