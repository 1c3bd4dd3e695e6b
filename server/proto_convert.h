// Conversions between the bnserve.v1 protobuf messages and the core types.
// No gRPC here: statuses become grpc::Status in server/grpc_status_util.h.
//
// Proto defaults are applied here, once: an unset field of NetworkConfig or
// OptimizerConfig takes the documented default (the book's values). Tensors
// are converted with Eigen::Map over the repeated field's buffer, never element
// by element. Every function is a pure function of its arguments: thread-safe.
#ifndef BNSERVE_SERVER_PROTO_CONVERT_H_
#define BNSERVE_SERVER_PROTO_CONVERT_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bnserve/v1/model_registry.pb.h"
#include "bnserve/v1/training_service.pb.h"
#include "bnserve/v1/types.pb.h"
#include "core/bn_mode.h"
#include "core/builtin_datasets.h"
#include "core/eigen_types.h"
#include "core/network.h"
#include "core/network_config.h"
#include "core/optimizer.h"
#include "core/trainer.h"
#include "google/protobuf/timestamp.pb.h"

namespace bnserve {

// The core config with every default applied: output_size 0 -> 10, activation
// UNSPECIFIED -> relu, weight_init UNSPECIFIED -> He, use_batchnorm unset ->
// true, bn_momentum unset -> 0.9, bn_eps unset -> 1e-6. input_size 0 takes
// `default_input_size`; with a default of 0 it stays 0, open until the data
// are read (ValidateNetworkConfigWithOpenInput). InvalidArgument for an
// unknown enum value, no hidden layer, or anything ValidateNetworkConfig
// rejects.
absl::StatusOr<NetworkConfig> NetworkConfigFromProto(const v1::NetworkConfig& proto,
                                                     int default_input_size);

// Every field set explicitly, so that NetworkConfigFromProto(ToProto(c)) == c.
v1::NetworkConfig NetworkConfigToProto(const NetworkConfig& config);

// The book's defaults for unset fields (learning rate 0.01, Adam 0.001).
// InvalidArgument for an unknown type or anything ValidateOptimizerConfig rejects.
absl::StatusOr<OptimizerConfig> OptimizerConfigFromProto(const v1::OptimizerConfig& proto);
v1::OptimizerConfig OptimizerConfigToProto(const OptimizerConfig& config);

// UNSPECIFIED -> kInference; InvalidArgument for an unknown value.
absl::StatusOr<BnMode> BnModeFromProto(v1::BnMode mode);

// UNSPECIFIED -> kTrain; InvalidArgument for an unknown value.
absl::StatusOr<Split> SplitFromProto(v1::Split split);

// A read-only view of a [rows, cols] tensor's values, without copying.
// InvalidArgument unless the shape has two positive dimensions whose product
// equals the number of values. The view is valid while `tensor` lives and is
// not modified.
absl::StatusOr<ConstMatrixMapT<float>> MapTensor(const v1::Tensor& tensor);

// Writes `matrix` into `tensor` as shape [rows, cols] with one bulk copy.
void MatrixToTensor(const ConstMatrixRef<float>& matrix, v1::Tensor* tensor);

// OK if every value is finite, else InvalidArgument naming `what` and the
// first offending position.
absl::Status CheckFinite(const ConstMatrixRef<float>& matrix, const std::string& what);

// OK if a stored tensor's shape (any rank, non-negative dimensions) has as
// many elements as the tensor has values; InvalidArgument naming it
// otherwise, also when the element count overflows (a crafted shape must not
// wrap around to the number of values it has).
absl::Status CheckNamedTensorShape(const v1::NamedTensor& named);

// Named tensors in name order, and back. InvalidArgument for a duplicate
// name or a tensor MapTensor rejects.
void TensorsToProto(const std::map<std::string, Matrix>& tensors,
                    google::protobuf::RepeatedPtrField<v1::NamedTensor>* out);
absl::StatusOr<std::map<std::string, Matrix>> TensorsFromProto(
    const google::protobuf::RepeatedPtrField<v1::NamedTensor>& tensors);

// The network a stored or exported `version` describes, built from its
// config and tensors. InvalidArgument for an unset input_size, a config
// NetworkConfigFromProto rejects, or tensors that do not match the config.
absl::StatusOr<Network<float>> NetworkFromVersion(const v1::ModelVersion& version);

v1::EpochMetrics EpochMetricsToProto(const EpochMetrics& metrics);

google::protobuf::Timestamp TimeToProto(absl::Time time);
absl::Time TimeFromProto(const google::protobuf::Timestamp& timestamp);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_PROTO_CONVERT_H_
