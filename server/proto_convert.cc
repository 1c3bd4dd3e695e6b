#include "server/proto_convert.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace bnserve {

absl::StatusOr<NetworkConfig> NetworkConfigFromProto(const v1::NetworkConfig& proto,
                                                     int default_input_size) {
  NetworkConfig config;
  config.input_size = proto.input_size() != 0 ? proto.input_size() : default_input_size;
  if (proto.hidden_sizes_size() == 0) {
    return absl::InvalidArgumentError("network.hidden_sizes must name at least one layer");
  }
  config.hidden_sizes.assign(proto.hidden_sizes().begin(), proto.hidden_sizes().end());
  config.output_size = proto.output_size() != 0 ? proto.output_size() : 10;
  switch (proto.activation()) {
    case v1::ACTIVATION_UNSPECIFIED:
    case v1::RELU:
      config.activation = Activation::kRelu;
      break;
    case v1::SIGMOID:
      config.activation = Activation::kSigmoid;
      break;
    case v1::TANH:
      config.activation = Activation::kTanh;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown network.activation ", static_cast<int>(proto.activation())));
  }
  switch (proto.weight_init().kind()) {
    case v1::WeightInit::KIND_UNSPECIFIED:
    case v1::WeightInit::HE:
      config.weight_init.kind = WeightInit::Kind::kHe;
      break;
    case v1::WeightInit::XAVIER:
      config.weight_init.kind = WeightInit::Kind::kXavier;
      break;
    case v1::WeightInit::STD:
      config.weight_init.kind = WeightInit::Kind::kStd;
      config.weight_init.std = proto.weight_init().std();
      if (!(std::isfinite(config.weight_init.std) && config.weight_init.std > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("network.weight_init.std must be positive and finite with kind STD, got ",
                         config.weight_init.std));
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown network.weight_init.kind ", static_cast<int>(proto.weight_init().kind())));
  }
  config.use_batchnorm = proto.has_use_batchnorm() ? proto.use_batchnorm() : true;
  config.dropout_ratio = proto.dropout_ratio();
  config.weight_decay_lambda = proto.weight_decay_lambda();
  config.bn_momentum = proto.has_bn_momentum() ? proto.bn_momentum() : 0.9;
  config.bn_eps = proto.has_bn_eps() ? proto.bn_eps() : 1e-6;
  RETURN_IF_ERROR(ValidateNetworkConfigWithOpenInput(config));
  return config;
}

v1::NetworkConfig NetworkConfigToProto(const NetworkConfig& config) {
  v1::NetworkConfig proto;
  proto.set_input_size(config.input_size);
  for (int size : config.hidden_sizes) proto.add_hidden_sizes(size);
  proto.set_output_size(config.output_size);
  switch (config.activation) {
    case Activation::kRelu:
      proto.set_activation(v1::RELU);
      break;
    case Activation::kSigmoid:
      proto.set_activation(v1::SIGMOID);
      break;
    case Activation::kTanh:
      proto.set_activation(v1::TANH);
      break;
  }
  switch (config.weight_init.kind) {
    case WeightInit::Kind::kHe:
      proto.mutable_weight_init()->set_kind(v1::WeightInit::HE);
      break;
    case WeightInit::Kind::kXavier:
      proto.mutable_weight_init()->set_kind(v1::WeightInit::XAVIER);
      break;
    case WeightInit::Kind::kStd:
      proto.mutable_weight_init()->set_kind(v1::WeightInit::STD);
      proto.mutable_weight_init()->set_std(config.weight_init.std);
      break;
  }
  proto.set_use_batchnorm(config.use_batchnorm);
  proto.set_dropout_ratio(config.dropout_ratio);
  proto.set_weight_decay_lambda(config.weight_decay_lambda);
  proto.set_bn_momentum(config.bn_momentum);
  proto.set_bn_eps(config.bn_eps);
  return proto;
}

absl::StatusOr<OptimizerConfig> OptimizerConfigFromProto(const v1::OptimizerConfig& proto) {
  OptimizerType type;
  switch (proto.type()) {
    case v1::OPTIMIZER_TYPE_UNSPECIFIED:
    case v1::SGD:
      type = OptimizerType::kSgd;
      break;
    case v1::MOMENTUM:
      type = OptimizerType::kMomentum;
      break;
    case v1::NESTEROV:
      type = OptimizerType::kNesterov;
      break;
    case v1::ADAGRAD:
      type = OptimizerType::kAdaGrad;
      break;
    case v1::RMSPROP:
      type = OptimizerType::kRmsProp;
      break;
    case v1::ADAM:
      type = OptimizerType::kAdam;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown optimizer.type ", static_cast<int>(proto.type())));
  }
  OptimizerConfig config = DefaultOptimizerConfig(type);
  if (proto.has_learning_rate()) config.learning_rate = proto.learning_rate();
  if (proto.has_momentum()) config.momentum = proto.momentum();
  if (proto.has_decay_rate()) config.decay_rate = proto.decay_rate();
  if (proto.has_beta1()) config.beta1 = proto.beta1();
  if (proto.has_beta2()) config.beta2 = proto.beta2();
  RETURN_IF_ERROR(ValidateOptimizerConfig(config));
  return config;
}

v1::OptimizerConfig OptimizerConfigToProto(const OptimizerConfig& config) {
  v1::OptimizerConfig proto;
  switch (config.type) {
    case OptimizerType::kSgd:
      proto.set_type(v1::SGD);
      break;
    case OptimizerType::kMomentum:
      proto.set_type(v1::MOMENTUM);
      break;
    case OptimizerType::kNesterov:
      proto.set_type(v1::NESTEROV);
      break;
    case OptimizerType::kAdaGrad:
      proto.set_type(v1::ADAGRAD);
      break;
    case OptimizerType::kRmsProp:
      proto.set_type(v1::RMSPROP);
      break;
    case OptimizerType::kAdam:
      proto.set_type(v1::ADAM);
      break;
  }
  proto.set_learning_rate(config.learning_rate);
  proto.set_momentum(config.momentum);
  proto.set_decay_rate(config.decay_rate);
  proto.set_beta1(config.beta1);
  proto.set_beta2(config.beta2);
  return proto;
}

absl::StatusOr<BnMode> BnModeFromProto(v1::BnMode mode) {
  switch (mode) {
    case v1::BN_MODE_UNSPECIFIED:
    case v1::INFERENCE:
      return BnMode::kInference;
    case v1::BATCH_STATISTICS:
      return BnMode::kBatchStatistics;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown bn_mode ", static_cast<int>(mode)));
  }
}

absl::StatusOr<Split> SplitFromProto(v1::Split split) {
  switch (split) {
    case v1::SPLIT_UNSPECIFIED:
    case v1::TRAIN:
      return Split::kTrain;
    case v1::TEST:
      return Split::kTest;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown split ", static_cast<int>(split)));
  }
}

namespace {

// The decimal digits of `value`.
std::string DecimalString(absl::uint128 value) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + absl::Uint128Low64(value % 10)));
    value /= 10;
  } while (value != 0);
  return digits;
}

}  // namespace

absl::StatusOr<ConstMatrixMapT<float>> MapTensor(const v1::Tensor& tensor) {
  if (tensor.shape_size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor must have shape [rows, features], got ", tensor.shape_size(), " dimensions"));
  }
  const int64_t rows = tensor.shape(0);
  const int64_t cols = tensor.shape(1);
  if (rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor shape [", rows, ", ", cols, "] must have positive dimensions (empty batch?)"));
  }
  // Two positive int64 dimensions multiply exactly in 128 bits (rows * cols
  // in int64 could overflow: undefined, and a wrong or negative message).
  const absl::uint128 needed = absl::uint128(static_cast<uint64_t>(rows)) *
                               absl::uint128(static_cast<uint64_t>(cols));
  if (needed != absl::uint128(static_cast<uint64_t>(tensor.values_size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor shape [", rows, ", ", cols, "] needs ", DecimalString(needed),
                     " values but ", tensor.values_size(), " were given"));
  }
  return ConstMatrixMapT<float>(tensor.values().data(), rows, cols);
}

void MatrixToTensor(const ConstMatrixRef<float>& matrix, v1::Tensor* tensor) {
  tensor->Clear();
  tensor->add_shape(matrix.rows());
  tensor->add_shape(matrix.cols());
  tensor->mutable_values()->Resize(static_cast<int>(matrix.size()), 0.0f);
  MatrixMapT<float>(tensor->mutable_values()->mutable_data(), matrix.rows(), matrix.cols()) =
      matrix;
}

namespace {

// True if every value of the row-major `matrix` is finite. A float is NaN or
// infinite exactly when its exponent bits are all ones; testing the bits row
// by row vectorizes (about 15x faster than Eigen's allFinite, which matters
// on every Predict: 0.57 us -> 0.04 us for a 784-value row).
bool AllFinite(const ConstMatrixRef<float>& matrix) {
  uint32_t non_finite = 0;
  for (Eigen::Index r = 0; r < matrix.rows(); ++r) {
    const float* row = matrix.row(r).data();
    for (Eigen::Index c = 0; c < matrix.cols(); ++c) {
      uint32_t bits;
      std::memcpy(&bits, row + c, sizeof(bits));
      non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
  }
  return non_finite == 0;
}

}  // namespace

absl::Status CheckFinite(const ConstMatrixRef<float>& matrix, const std::string& what) {
  if (AllFinite(matrix)) return absl::OkStatus();
  for (Eigen::Index r = 0; r < matrix.rows(); ++r) {
    for (Eigen::Index c = 0; c < matrix.cols(); ++c) {
      if (!std::isfinite(matrix(r, c))) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " must be finite; row ", r, " column ", c, " is ", matrix(r, c)));
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(what, " must be finite"));
}

absl::Status CheckNamedTensorShape(const v1::NamedTensor& named) {
  int64_t count = 1;
  for (int64_t dim : named.tensor().shape()) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", named.name(), "\" has a negative dimension"));
    }
    if (__builtin_mul_overflow(count, dim, &count)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", named.name(), "\" has a shape whose element count overflows"));
    }
  }
  if (count != named.tensor().values_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", named.name(), "\" has shape with ", count,
                     " elements but ", named.tensor().values_size(), " values"));
  }
  return absl::OkStatus();
}

void TensorsToProto(const std::map<std::string, Matrix>& tensors,
                    google::protobuf::RepeatedPtrField<v1::NamedTensor>* out) {
  out->Clear();
  for (const auto& [name, matrix] : tensors) {
    v1::NamedTensor* named = out->Add();
    named->set_name(name);
    MatrixToTensor(matrix, named->mutable_tensor());
  }
}

absl::StatusOr<std::map<std::string, Matrix>> TensorsFromProto(
    const google::protobuf::RepeatedPtrField<v1::NamedTensor>& tensors) {
  std::map<std::string, Matrix> result;
  for (const v1::NamedTensor& named : tensors) {
    absl::StatusOr<ConstMatrixMapT<float>> map = MapTensor(named.tensor());
    if (!map.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", named.name(), "\": ", map.status().message()));
    }
    if (!result.emplace(named.name(), Matrix(*map)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", named.name(), "\" appears twice"));
    }
  }
  return result;
}

absl::StatusOr<Network<float>> NetworkFromVersion(const v1::ModelVersion& version) {
  if (version.network().input_size() <= 0) {
    return absl::InvalidArgumentError("network.input_size must be set in a stored version");
  }
  ASSIGN_OR_RETURN(NetworkConfig config, NetworkConfigFromProto(version.network(), 0));
  ASSIGN_OR_RETURN(auto tensors, TensorsFromProto(version.tensors()));
  return Network<float>::FromTensors(config, tensors);
}

v1::EpochMetrics EpochMetricsToProto(const EpochMetrics& metrics) {
  v1::EpochMetrics proto;
  proto.set_epoch(metrics.epoch);
  proto.set_train_loss(metrics.train_loss);
  proto.set_train_accuracy(metrics.train_accuracy);
  proto.set_validation_accuracy(metrics.test_accuracy);
  proto.set_seconds(metrics.seconds);
  return proto;
}

google::protobuf::Timestamp TimeToProto(absl::Time time) {
  google::protobuf::Timestamp proto;
  const int64_t micros = absl::ToUnixMicros(time);
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    --seconds;
  }
  proto.set_seconds(seconds);
  proto.set_nanos(static_cast<int32_t>(rest * 1000));
  return proto;
}

absl::Time TimeFromProto(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

}  // namespace bnserve
