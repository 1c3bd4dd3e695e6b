// JobQueue: the queue of training jobs that several bnserve replicas share
// through one database, with leases.
//
// With a shared registry (PostgreSQL) no replica holds the queue in memory.
// Submit stores a job QUEUED together with its full request (inline data
// included, since another replica may run it); an idle worker on any replica
// claims the oldest queued job (PostgreSQL: SELECT ... FOR UPDATE SKIP
// LOCKED), which makes it RUNNING under that replica's lease; the worker
// renews the lease while it trains and learns from the renewal whether
// someone, on any replica, asked to cancel the job. A replica that dies
// stops renewing: once its lease has expired, any replica's reaper marks the
// job FAILED ("worker lost: ..."). Jobs are not requeued: a job that died
// with its replica may have died of its own request (memory), and training
// it again silently on another replica could take that one down too; the
// client sees FAILED and can resubmit.
//
// A job's state, epochs and final version are written through the
// ModelStore (PutJob, AppendEpochMetrics, AddVersion) as for a local job.
// The store refuses (FailedPrecondition "lease lost") to record a final
// state or register a version for a job that is no longer RUNNING under the
// replica named in the Job's `replica` field, so a worker whose lease was
// reaped cannot overwrite the FAILED state or register a version.
//
// The full requests of queued jobs live in the database, not in memory, and
// are deleted when the job finishes.
//
// Thread-safety: implementations are thread-safe.
#ifndef BNSERVE_SERVER_JOB_QUEUE_H_
#define BNSERVE_SERVER_JOB_QUEUE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bnserve/v1/training_service.pb.h"

namespace bnserve {

// A job to enqueue: its record (QUEUED, id assigned, `request` as kept with
// the job, inline values stripped) and the full request a worker needs.
struct QueuedJob {
  v1::Job job;
  v1::TrainRequest full_request;
};

// A job a worker claimed: its record (now RUNNING, `replica` and
// `started_at` set) and the full request.
struct ClaimedJob {
  v1::Job job;
  v1::TrainRequest full_request;
};

// What a lease renewal learned.
struct LeaseRenewal {
  // Someone asked to cancel the job (RequestCancel), with this reason.
  bool cancel_requested = false;
  std::string cancel_reason;
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Reserves `count` (>= 1) consecutive job sequence numbers, never handed
  // out before by any replica, and returns the first. Job ids are
  // "job-%06d" of the sequence number.
  virtual absl::StatusOr<int64_t> ReserveJobSeqs(int count) = 0;

  // The number of QUEUED jobs, over all replicas.
  virtual absl::StatusOr<int64_t> QueuedJobCount() = 0;

  // Stores `jobs` QUEUED with their full requests, all or none, in one
  // transaction. When `max_queued` >= 0 and the queue would then hold more
  // than `max_queued` jobs, stores nothing: ResourceExhausted. AlreadyExists
  // for an id that is stored already.
  virtual absl::Status Enqueue(const std::vector<QueuedJob>& jobs, int64_t max_queued) = 0;

  // Claims the oldest QUEUED job (by sequence number) that no one else is
  // claiming: sets it RUNNING, its `replica` and `started_at`, with a lease
  // until now + `lease`. nullopt when no job is queued.
  virtual absl::StatusOr<std::optional<ClaimedJob>> ClaimNext(const std::string& replica,
                                                              absl::Duration lease) = 0;

  // Extends the lease of a RUNNING job held by `replica` to now + `lease`.
  // FailedPrecondition "lease lost" when the job is not RUNNING under this
  // replica any more (its lease expired and it was reaped); NotFound for an
  // unknown id.
  virtual absl::StatusOr<LeaseRenewal> RenewLease(const std::string& job_id,
                                                  const std::string& replica,
                                                  absl::Duration lease) = 0;

  // A QUEUED job becomes CANCELLED with `reason` at once (and its request is
  // deleted); a RUNNING job is marked cancel-requested with `reason` (its
  // worker sees it at its next renewal). Returns the job as it now is.
  // NotFound for an unknown id; FailedPrecondition when it already finished.
  virtual absl::StatusOr<v1::Job> RequestCancel(const std::string& job_id,
                                                const std::string& reason) = 0;

  // Marks every RUNNING job whose lease has expired FAILED with `reason`
  // (and a finish time) and returns them as stored.
  virtual absl::StatusOr<std::vector<v1::Job>> ReapExpiredLeases(const std::string& reason) = 0;

  // One stored job with its epochs. NotFound for an unknown id.
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& job_id) = 0;

  // A job's epochs numbered above `after_epoch`, in order (a watcher on
  // another replica polls with this).
  virtual absl::StatusOr<std::vector<v1::EpochMetrics>> EpochsAfter(const std::string& job_id,
                                                                    int after_epoch) = 0;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_JOB_QUEUE_H_
