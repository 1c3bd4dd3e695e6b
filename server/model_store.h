// ModelStore: the persistent state of bnserve — named models, their immutable
// versions (metadata and every tensor), aliases, and training jobs with their
// per-epoch metrics, and sweeps (grids of jobs).
//
// Versions are numbered per model from 1 and never reused, even after a
// delete. A stored version never changes; its tensors read back bit-exactly.
// Registering a version and recording the job that produced it in its final
// state happen in one transaction: either both are stored or neither.
//
// Messages are the bnserve.v1 protos: a stored ModelVersion's `aliases` field
// is filled on read from the alias table; a stored Job's `epochs` are kept in
// the metrics table and filled on read.
//
// Thread-safety: implementations are thread-safe; every method may be called
// concurrently from any thread.
#ifndef BNSERVE_SERVER_MODEL_STORE_H_
#define BNSERVE_SERVER_MODEL_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bnserve/v1/model_registry.pb.h"
#include "bnserve/v1/training_service.pb.h"
#include "server/job_queue.h"

namespace bnserve {

class ModelStore {
 public:
  virtual ~ModelStore() = default;

  // Stores `version` (its model_name, network, tensors and metadata; its
  // version number and aliases are ignored) as the next version of
  // version.model_name, creating the model if needed, and returns the number
  // assigned. When `finished_job` is not null it is stored too, as by PutJob
  // and with its model_version set to the new number, in the same transaction.
  // InvalidArgument (and nothing stored) for an empty model name or a tensor
  // whose shape does not match its number of values.
  virtual absl::StatusOr<int> AddVersion(const v1::ModelVersion& version,
                                         const v1::Job* finished_job) = 0;

  // One version, with its tensors when `include_tensors`. NotFound if absent.
  virtual absl::StatusOr<v1::ModelVersion> GetVersion(const std::string& model_name,
                                                      int version,
                                                      bool include_tensors) = 0;

  // The highest existing version number of a model. NotFound when the model
  // has no version.
  virtual absl::StatusOr<int> LatestVersion(const std::string& model_name) = 0;

  // The version an alias points at. NotFound if the alias does not exist.
  virtual absl::StatusOr<int> ResolveAlias(const std::string& model_name,
                                           const std::string& alias) = 0;

  // Every model that has at least one version, by name.
  virtual absl::StatusOr<std::vector<v1::Model>> ListModels() = 0;

  // One model. NotFound if it has no version.
  virtual absl::StatusOr<v1::Model> GetModel(const std::string& model_name) = 0;

  // Deletes a version and its tensors. NotFound if absent; FailedPrecondition
  // (and nothing deleted) while an alias points at it.
  virtual absl::Status DeleteVersion(const std::string& model_name, int version) = 0;

  // Creates or moves an alias. NotFound if the version does not exist.
  virtual absl::Status SetAlias(const std::string& model_name, const std::string& alias,
                                int version) = 0;

  // NotFound if the alias does not exist.
  virtual absl::Status DeleteAlias(const std::string& model_name,
                                   const std::string& alias) = 0;

  // The catalog generation: a counter that increases after every call of
  // AddVersion, DeleteVersion, SetAlias or DeleteAlias on this store has
  // committed (or failed), and does not change otherwise (jobs and metrics do
  // not count). It lets a caller keep versions and aliases in memory:
  // whatever it read from the store AFTER reading generation g is current as
  // long as the generation is still g. Cheap: no I/O, no lock. A store that
  // several processes share (PostgreSQL) also counts the changes other
  // processes commit, once it has heard of them (LISTEN/NOTIFY or polling;
  // within a bounded delay its header states); a store owned by one process
  // (SQLite) counts only its own. nullopt (the
  // default, e.g. for a test double that wraps another store) when the store
  // keeps none: then nothing read from it may be kept.
  virtual std::optional<uint64_t> CatalogGeneration() const { return std::nullopt; }

  // Inserts or replaces a job (keyed by job_id) and upserts its `epochs`
  // into the metrics table (keyed by epoch number).
  virtual absl::Status PutJob(const v1::Job& job) = 0;

  // Appends one epoch's metrics to a job's history.
  virtual absl::Status AppendEpochMetrics(const std::string& job_id,
                                          const v1::EpochMetrics& metrics) = 0;

  // Every stored job with its metrics, in job_id order.
  virtual absl::StatusOr<std::vector<v1::Job>> ListJobs() = 0;

  // Marks every QUEUED or RUNNING job FAILED with `reason` (and a finish time)
  // and returns how many were marked. Called once at startup: such jobs were
  // interrupted by a restart.
  virtual absl::StatusOr<int> FailUnfinishedJobs(const std::string& reason) = 0;

  // The job queue this store shares with other replicas (PostgreSQL), or
  // nullptr when the store belongs to one process and the JobManager keeps
  // its queue in memory (SQLite). Owned by the store.
  virtual JobQueue* SharedJobQueue() { return nullptr; }

  // Inserts or replaces a sweep (keyed by sweep_id) as given. The sweep
  // manager stores what does not change (the request, each point's values
  // and job id); its points' job states are read from the jobs.
  // InvalidArgument for an empty sweep_id.
  virtual absl::Status PutSweep(const v1::Sweep& sweep) = 0;

  // Every stored sweep, in sweep_id order.
  virtual absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() = 0;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_MODEL_STORE_H_
