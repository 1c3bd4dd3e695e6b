#include "client/proto_format.h"

#include <cmath>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace bnserve {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::StrCat("{\"error\": \"", status.ToString(), "\"}");
  return json;
}

std::string JobStateName(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED) return "UNSPECIFIED";
  return v1::JobState_Name(state);
}

namespace {
template <typename Enum, typename ParseFn>
absl::StatusOr<Enum> ParseEnumName(absl::string_view text, absl::string_view what,
                                   absl::string_view choices, ParseFn parse) {
  Enum value;
  if (parse(absl::AsciiStrToUpper(text), &value)) return value;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " '", text, "'; one of ", choices));
}
}  // namespace

absl::StatusOr<v1::JobState> ParseJobState(absl::string_view text) {
  return ParseEnumName<v1::JobState>(
      text, "job state", "queued, running, succeeded, failed, cancelled",
      [](const std::string& name, v1::JobState* state) {
        return name != "JOB_STATE_UNSPECIFIED" && v1::JobState_Parse(name, state);
      });
}

absl::StatusOr<v1::BnMode> ParseBnMode(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "inference") return v1::INFERENCE;
  if (lower == "batch" || lower == "batch_statistics" || lower == "batch-statistics") {
    return v1::BATCH_STATISTICS;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown BN mode '", text, "'; one of inference, batch"));
}

absl::StatusOr<v1::OptimizerType> ParseOptimizer(absl::string_view text) {
  return ParseEnumName<v1::OptimizerType>(
      text, "optimizer", "sgd, momentum, nesterov, adagrad, rmsprop, adam",
      [](const std::string& name, v1::OptimizerType* type) {
        return name != "OPTIMIZER_TYPE_UNSPECIFIED" && v1::OptimizerType_Parse(name, type);
      });
}

absl::StatusOr<v1::Activation> ParseProtoActivation(absl::string_view text) {
  return ParseEnumName<v1::Activation>(
      text, "activation", "relu, sigmoid, tanh",
      [](const std::string& name, v1::Activation* activation) {
        return name != "ACTIVATION_UNSPECIFIED" && v1::Activation_Parse(name, activation);
      });
}

absl::StatusOr<v1::WeightInit> ParseProtoWeightInit(absl::string_view text) {
  v1::WeightInit init;
  std::string lower = absl::AsciiStrToLower(text);
  double std = 0;
  if (lower == "he" || lower == "relu") {
    init.set_kind(v1::WeightInit::HE);
  } else if (lower == "xavier" || lower == "sigmoid") {
    init.set_kind(v1::WeightInit::XAVIER);
  } else if (absl::SimpleAtod(lower, &std) && std > 0 && std::isfinite(std)) {
    init.set_kind(v1::WeightInit::STD);
    init.set_std(std);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown weight init '", text, "'; he, xavier or a positive number"));
  }
  return init;
}

absl::StatusOr<v1::Split> ParseProtoSplit(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "train") return v1::TRAIN;
  if (lower == "test") return v1::TEST;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split '", text, "'; train or test"));
}

std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  absl::Time time = absl::FromUnixSeconds(timestamp.seconds());
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", time, absl::UTCTimeZone());
}

std::string FormatNetwork(const v1::NetworkConfig& network) {
  std::string layers = network.input_size() > 0 ? absl::StrCat(network.input_size())
                                                : std::string("?");
  // Runs of equal widths are written 100x5.
  const auto& hidden = network.hidden_sizes();
  for (int i = 0; i < hidden.size();) {
    int j = i;
    while (j < hidden.size() && hidden[j] == hidden[i]) ++j;
    absl::StrAppend(&layers, "-", hidden[i]);
    if (j - i > 1) absl::StrAppend(&layers, "x", j - i);
    i = j;
  }
  absl::StrAppend(&layers, "-", network.output_size() > 0 ? network.output_size() : 10);
  std::string activation =
      network.activation() == v1::ACTIVATION_UNSPECIFIED
          ? "relu"
          : absl::AsciiStrToLower(v1::Activation_Name(network.activation()));
  std::string init;
  switch (network.weight_init().kind()) {
    case v1::WeightInit::STD:
      init = absl::StrCat("std=", network.weight_init().std());
      break;
    case v1::WeightInit::XAVIER:
      init = "xavier";
      break;
    default:
      init = "he";
  }
  bool batchnorm = !network.has_use_batchnorm() || network.use_batchnorm();
  std::string text = absl::StrCat(layers, " ", activation, " ", init, " ",
                                  batchnorm ? "batchnorm" : "no-batchnorm");
  if (network.dropout_ratio() > 0) absl::StrAppend(&text, " dropout=", network.dropout_ratio());
  if (network.weight_decay_lambda() > 0) {
    absl::StrAppend(&text, " weight_decay=", network.weight_decay_lambda());
  }
  return text;
}

std::string FormatEpoch(const v1::EpochMetrics& epoch, int total_epochs) {
  std::string text = absl::StrFormat("epoch %3d", epoch.epoch());
  if (total_epochs > 0) absl::StrAppend(&text, absl::StrFormat("/%-3d", total_epochs));
  absl::StrAppend(&text, absl::StrFormat("  loss %.4f  train acc %.4f", epoch.train_loss(),
                                         epoch.train_accuracy()));
  if (epoch.validation_accuracy() > 0) {
    absl::StrAppend(&text, absl::StrFormat("  val acc %.4f", epoch.validation_accuracy()));
  }
  absl::StrAppend(&text, absl::StrFormat("  %.3fs", epoch.seconds()));
  return text;
}

std::string FormatJobLine(const v1::Job& job) {
  std::string text = absl::StrFormat("%-12s %-10s %-20s epochs %d/%d", job.job_id(),
                                     JobStateName(job.state()), job.model_name(),
                                     job.epochs_size(), job.total_epochs());
  if (job.model_version() > 0) absl::StrAppend(&text, "  -> version ", job.model_version());
  if (!job.epochs().empty()) {
    absl::StrAppend(&text, absl::StrFormat("  train acc %.4f",
                                           job.epochs().rbegin()->train_accuracy()));
  }
  if (!job.reason().empty()) absl::StrAppend(&text, "  (", job.reason(), ")");
  return text;
}

namespace {
std::string FormatDataSpec(const v1::DataSpec& data) {
  switch (data.source_case()) {
    case v1::DataSpec::kBuiltin: {
      const v1::BuiltinData& builtin = data.builtin();
      std::string text = absl::StrCat(
          builtin.name(), "/", builtin.split() == v1::TEST ? "test" : "train");
      if (builtin.limit() > 0) absl::StrAppend(&text, " limit ", builtin.limit());
      return text;
    }
    case v1::DataSpec::kIdx: {
      std::string text =
          absl::StrCat("idx ", data.idx().images_path(), " ", data.idx().labels_path());
      if (data.idx().limit() > 0) absl::StrAppend(&text, " limit ", data.idx().limit());
      return text;
    }
    case v1::DataSpec::kInlineData:
      return absl::StrCat("inline ", absl::StrJoin(data.inline_data().features().shape(), "x"));
    default:
      return "-";
  }
}

std::string FormatOptimizer(const v1::OptimizerConfig& optimizer) {
  std::string text =
      optimizer.type() == v1::OPTIMIZER_TYPE_UNSPECIFIED
          ? "sgd"
          : absl::AsciiStrToLower(v1::OptimizerType_Name(optimizer.type()));
  if (optimizer.has_learning_rate()) absl::StrAppend(&text, " lr=", optimizer.learning_rate());
  if (optimizer.has_momentum()) absl::StrAppend(&text, " momentum=", optimizer.momentum());
  return text;
}
}  // namespace

std::string FormatJobDetails(const v1::Job& job) {
  const v1::TrainRequest& request = job.request();
  std::string text;
  absl::StrAppend(&text, "job:        ", job.job_id(), "\n");
  absl::StrAppend(&text, "model:      ", job.model_name(), "\n");
  absl::StrAppend(&text, "state:      ", JobStateName(job.state()), "\n");
  if (!job.reason().empty()) absl::StrAppend(&text, "reason:     ", job.reason(), "\n");
  absl::StrAppend(&text, "network:    ", FormatNetwork(request.network()), "\n");
  absl::StrAppend(&text, "optimizer:  ", FormatOptimizer(request.optimizer()), "\n");
  absl::StrAppend(&text, "data:       ", FormatDataSpec(request.train_data()));
  if (request.has_validation_data()) {
    absl::StrAppend(&text, "  (validation ", FormatDataSpec(request.validation_data()), ")");
  }
  absl::StrAppend(&text, "\n");
  absl::StrAppend(&text, "batch size: ", request.batch_size(), "  seed: ", request.seed(),
                  "\n");
  if (!request.description().empty()) {
    absl::StrAppend(&text, "note:       ", request.description(), "\n");
  }
  absl::StrAppend(&text, "created:    ", FormatTimestamp(job.created_at()),
                  "  started: ", FormatTimestamp(job.started_at()),
                  "  finished: ", FormatTimestamp(job.finished_at()), "\n");
  absl::StrAppend(&text, "epochs:     ", job.epochs_size(), "/", job.total_epochs(), "\n");
  for (const v1::EpochMetrics& epoch : job.epochs()) {
    absl::StrAppend(&text, "  ", FormatEpoch(epoch, job.total_epochs()), "\n");
  }
  if (job.model_version() > 0) {
    absl::StrAppend(&text, "version:    ", job.model_name(), " version ",
                    job.model_version(), "\n");
  }
  return text;
}

std::string ProgressBar(int done, int total, int width) {
  int filled = total > 0 ? std::min(width, done * width / total) : 0;
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
}

std::string FormatModelVersion(const v1::ModelVersion& version) {
  std::string text;
  absl::StrAppend(&text, "model:      ", version.model_name(), "\n");
  absl::StrAppend(&text, "version:    ", version.version(), "\n");
  if (!version.aliases().empty()) {
    absl::StrAppend(&text, "aliases:    ", absl::StrJoin(version.aliases(), ", "), "\n");
  }
  absl::StrAppend(&text, "network:    ", FormatNetwork(version.network()), "\n");
  const bool batchnorm =
      !version.network().has_use_batchnorm() || version.network().use_batchnorm();
  if (batchnorm) {
    absl::StrAppend(&text, "serving:    INFERENCE ",
                    version.served_folded() ? "with BatchNorm folded into the Affine layers"
                                            : "with BatchNorm unfolded",
                    "\n");
  }
  absl::StrAppend(&text, "job:        ", version.job_id().empty() ? "- (imported)" : version.job_id(),
                  "\n");
  absl::StrAppend(&text, "created:    ", FormatTimestamp(version.created_at()), "\n");
  if (version.has_final_metrics()) {
    absl::StrAppend(&text, "metrics:    ", FormatEpoch(version.final_metrics(), 0), "\n");
  }
  if (!version.training().description().empty()) {
    absl::StrAppend(&text, "note:       ", version.training().description(), "\n");
  }
  return text;
}

std::string FormatModelRef(const v1::ModelRef& ref) {
  switch (ref.selector_case()) {
    case v1::ModelRef::kVersion:
      return absl::StrCat(ref.name(), "@", ref.version());
    case v1::ModelRef::kAlias:
      return absl::StrCat(ref.name(), ":", ref.alias());
    default:
      return ref.name();
  }
}

}  // namespace bnserve
