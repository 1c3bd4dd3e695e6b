#include "server/training_plan.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "server/model_catalog.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

// A prepared data set, with `what` before the message of its error.
absl::StatusOr<DataSource> PrepareData(const DataResolver& data, const v1::DataSpec& spec,
                                       int num_classes, const char* what) {
  absl::StatusOr<DataSource> source = data.Prepare(spec, num_classes);
  if (!source.ok() && what != nullptr) {
    return absl::Status(source.status().code(),
                        absl::StrCat(what, source.status().message()));
  }
  return source;
}

// InvalidArgument unless `data`, when it has features, has `input_size` of them.
absl::Status CheckFeatures(int input_size, const Dataset& data, const std::string& name) {
  if (data.size() > 0 && data.feature_size() != input_size) {
    return absl::InvalidArgumentError(absl::StrCat("network.input_size is ", input_size,
                                                   " but ", name, " ", data.feature_size(),
                                                   " features"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainingPlan> PlanTraining(const v1::TrainRequest& request,
                                          const JobLimits& limits, const DataResolver& data) {
  RETURN_IF_ERROR(ModelCatalog::ValidateModelName(request.model_name()));
  if (!request.has_train_data()) {
    return absl::InvalidArgumentError("train_data is required");
  }
  TrainingPlan plan;
  plan.model_name = request.model_name();
  // The input size stays open (0) unless the request or inline data fix it.
  ASSIGN_OR_RETURN(plan.network, NetworkConfigFromProto(request.network(), 0));
  ASSIGN_OR_RETURN(plan.trainer.optimizer, OptimizerConfigFromProto(request.optimizer()));
  if (request.epochs() < 0 || request.epochs() > limits.max_epochs) {
    return absl::InvalidArgumentError(absl::StrCat("epochs must be in [1, ", limits.max_epochs,
                                                   "] (0: ", kDefaultEpochs, "), got ",
                                                   request.epochs()));
  }
  plan.trainer.epochs = request.epochs() == 0 ? kDefaultEpochs : request.epochs();
  plan.trainer.batch_size = request.batch_size() == 0 ? kDefaultBatchSize : request.batch_size();
  plan.trainer.seed = request.seed();
  RETURN_IF_ERROR(ValidateTrainerOptions(plan.trainer, plan.network));

  const int num_classes = plan.network.output_size;
  ASSIGN_OR_RETURN(plan.train_data,
                   PrepareData(data, request.train_data(), num_classes, nullptr));
  if (request.has_validation_data()) {
    ASSIGN_OR_RETURN(plan.validation_data, PrepareData(data, request.validation_data(),
                                                       num_classes, "validation_data: "));
  }
  const Dataset* inline_train = plan.train_data.inline_data.get();
  const Dataset* inline_validation =
      plan.validation_data.has_value() ? plan.validation_data->inline_data.get() : nullptr;
  if (plan.network.input_size == 0 && inline_train != nullptr) {
    plan.network.input_size = inline_train->feature_size();
    RETURN_IF_ERROR(ValidateNetworkConfig(plan.network));
  }
  for (const Dataset* inline_data : {inline_train, inline_validation}) {
    if (inline_data == nullptr || plan.network.input_size == 0) continue;
    RETURN_IF_ERROR(CheckFeatures(plan.network.input_size, *inline_data, "the inline data have"));
  }
  RETURN_IF_ERROR(CheckTrainingMemory(plan.network, plan.trainer.batch_size,
                                      plan.train_data.max_rows, limits));
  return plan;
}

absl::Status CheckTrainingMemory(const NetworkConfig& network, int batch_size,
                                 std::optional<int64_t> train_rows, const JobLimits& limits) {
  const int batch_rows =
      train_rows.has_value() ? EffectiveBatchSize(batch_size, *train_rows) : batch_size;
  const int64_t bytes = EstimateTrainingBytes(network, batch_rows);
  if (bytes <= limits.max_job_bytes) return absl::OkStatus();
  constexpr int64_t kMiB = int64_t{1} << 20;
  const std::string batch =
      batch_rows == batch_size
          ? absl::StrCat("batch_size ", batch_size)
          : absl::StrCat("batch_size ", batch_size, ", batches of the whole training set's ",
                         batch_rows, " rows");
  return absl::ResourceExhaustedError(absl::StrCat(
      "the job would need about ", bytes / kMiB, " MiB of memory (a network of ",
      NetworkParameterCount(network), " parameters, ", batch,
      "), more than the server's limit of ", limits.max_job_bytes / kMiB,
      " MiB; use a smaller batch_size or network"));
}

absl::StatusOr<NetworkConfig> NetworkForData(const TrainingPlan& plan, const Dataset& train,
                                             const Dataset& validation,
                                             const JobLimits& limits) {
  NetworkConfig network = plan.network;
  if (network.input_size == 0) {
    network.input_size = train.feature_size();
    RETURN_IF_ERROR(ValidateNetworkConfig(network));
  }
  for (const Dataset* data : {&train, &validation}) {
    RETURN_IF_ERROR(CheckFeatures(network.input_size, *data, absl::StrCat(data->name, " has")));
  }
  RETURN_IF_ERROR(CheckTrainingMemory(network, plan.trainer.batch_size, train.size(), limits));
  return network;
}

}  // namespace bnserve
