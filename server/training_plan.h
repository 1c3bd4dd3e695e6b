// TrainingPlan: a TrainRequest parsed and validated once, into the typed
// values a training job runs on (as TF Serving turns a request into a typed
// ServableRequest before anything acts on it). The job keeps the plan; its
// worker only resolves the data and fills in the input size.
//
//   // Submit, on the caller's thread: no file is read.
//   ASSIGN_OR_RETURN(TrainingPlan plan, PlanTraining(request, limits, data));
//   // The worker, with the data loaded:
//   ASSIGN_OR_RETURN(NetworkConfig network, NetworkForData(plan, *train, *validation, limits));
//   ASSIGN_OR_RETURN(Network<float> net, Network<float>::Create(network, plan.trainer.seed));
//   Train(&net, *train, *validation, plan.trainer, ...);
//
// Every default is applied in PlanTraining, once: the network's (NetworkConfig-
// FromProto), the optimizer's, epochs 0 -> kDefaultEpochs and batch_size 0 ->
// kDefaultBatchSize; and the core's own checks are called
// (ValidateNetworkConfig, ValidateTrainerOptions). The memory bound is a
// contract like TF Serving's Loader::EstimateResources: EstimateTrainingBytes
// for the batch the trainer will really use (EffectiveBatchSize), checked at
// Submit with what is known of the data then, and again with the data.
//
// Plain values and stateless functions: a plan may be read from any thread.
#ifndef BNSERVE_SERVER_TRAINING_PLAN_H_
#define BNSERVE_SERVER_TRAINING_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bnserve/v1/training_service.pb.h"
#include "core/dataset.h"
#include "core/network_config.h"
#include "core/trainer.h"
#include "server/data_resolver.h"

namespace bnserve {

// The server's limits on one training job.
struct JobLimits {
  // Largest allowed TrainRequest.epochs.
  int max_epochs = 200;
  // Largest estimated working memory of one job (EstimateTrainingBytes).
  int64_t max_job_bytes = int64_t{4} << 30;
};

struct TrainingPlan {
  std::string model_name;
  // Every default applied. input_size is 0 while it is open: neither the
  // request nor inline training data fixed it (it comes with the data).
  NetworkConfig network;
  // epochs, batch_size (as requested: Train uses EffectiveBatchSize), seed,
  // optimizer.
  TrainerOptions trainer;
  DataSource train_data;
  std::optional<DataSource> validation_data;
};

// Parses and validates `request` without reading any file. InvalidArgument
// for a bad model name, network, optimizer, epochs (outside [1,
// limits.max_epochs], 0 meaning the default), batch size or data spec (see
// DataResolver::Prepare; a validation spec's message starts with
// "validation_data: "), or inline data whose feature count is not the
// network's input_size. ResourceExhausted when the job would need more than
// limits.max_job_bytes as far as its sizes are known (CheckTrainingMemory;
// with the input size open the estimate counts none, a lower bound).
absl::StatusOr<TrainingPlan> PlanTraining(const v1::TrainRequest& request,
                                          const JobLimits& limits, const DataResolver& data);

// ResourceExhausted if training `network` in batches of `batch_size` on a
// training set of at most `train_rows` rows (nullopt: unknown, the batch
// counts in full) needs more than limits.max_job_bytes
// (EstimateTrainingBytes at EffectiveBatchSize).
absl::Status CheckTrainingMemory(const NetworkConfig& network, int batch_size,
                                 std::optional<int64_t> train_rows, const JobLimits& limits);

// The network to train once the data are loaded: the plan's, with the input
// size taken from `train` if it was open. InvalidArgument when a non-empty
// data set's feature count differs from it or the completed config is
// invalid; ResourceExhausted when training it on `train` exceeds the limit
// (CheckTrainingMemory with the real row count).
absl::StatusOr<NetworkConfig> NetworkForData(const TrainingPlan& plan, const Dataset& train,
                                             const Dataset& validation,
                                             const JobLimits& limits);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_TRAINING_PLAN_H_
