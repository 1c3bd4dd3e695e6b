// Text and JSON renderings of bnserve.v1 messages for bnctl's output, and the
// parsing of enum names typed on the command line. Pure functions; thread-safe.
#ifndef BNSERVE_CLIENT_PROTO_FORMAT_H_
#define BNSERVE_CLIENT_PROTO_FORMAT_H_

#include <string>

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bnserve/v1/inference_service.pb.h"
#include "bnserve/v1/model_registry.pb.h"
#include "bnserve/v1/training_service.pb.h"
#include "bnserve/v1/types.pb.h"

namespace bnserve {

// The message as protobuf JSON (proto field names, defaults included), one
// line without a trailing newline.
std::string ToJson(const google::protobuf::Message& message);

// "RUNNING", "SUCCEEDED", ...
std::string JobStateName(v1::JobState state);
// Case-insensitive "queued", "running", "succeeded", "failed", "cancelled".
absl::StatusOr<v1::JobState> ParseJobState(absl::string_view text);
// "inference" or "batch" (also "batch_statistics").
absl::StatusOr<v1::BnMode> ParseBnMode(absl::string_view text);
// "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam".
absl::StatusOr<v1::OptimizerType> ParseOptimizer(absl::string_view text);
// "relu", "sigmoid", "tanh".
absl::StatusOr<v1::Activation> ParseProtoActivation(absl::string_view text);
// "he", "xavier" or a positive standard deviation such as "0.05".
absl::StatusOr<v1::WeightInit> ParseProtoWeightInit(absl::string_view text);
// "train" or "test".
absl::StatusOr<v1::Split> ParseProtoSplit(absl::string_view text);

// "2026-11-27 12:00:00Z", or "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp);
// "784-100x5-10 relu he batchnorm", a compact description of an architecture.
std::string FormatNetwork(const v1::NetworkConfig& network);
// "epoch  3/20  loss 0.4321  train acc 0.9120  val acc 0.8930  1.2s".
std::string FormatEpoch(const v1::EpochMetrics& epoch, int total_epochs);
// "job-000001  RUNNING  model m  epoch 2/5 ..." on one line.
std::string FormatJobLine(const v1::Job& job);
// Several lines: state, reason, request summary, epochs, version.
std::string FormatJobDetails(const v1::Job& job);
// "[#######.......]" of `width` cells for done/total.
std::string ProgressBar(int done, int total, int width);
// One model version's metadata, several lines.
std::string FormatModelVersion(const v1::ModelVersion& version);
// "name@3", "name:production" or "name" (latest).
std::string FormatModelRef(const v1::ModelRef& ref);

}  // namespace bnserve

#endif  // BNSERVE_CLIENT_PROTO_FORMAT_H_
