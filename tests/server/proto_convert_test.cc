#include "server/proto_convert.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;

TEST(ProtoConvertTest, UnsetNetworkFieldsTakeTheDocumentedDefaults) {
  v1::NetworkConfig proto;
  proto.add_hidden_sizes(50);
  ASSERT_OK_AND_ASSIGN(NetworkConfig config, NetworkConfigFromProto(proto, 784));
  EXPECT_EQ(config.input_size, 784);
  EXPECT_EQ(config.hidden_sizes, std::vector<int>{50});
  EXPECT_EQ(config.output_size, 10);
  EXPECT_EQ(config.activation, Activation::kRelu);
  EXPECT_EQ(config.weight_init.kind, WeightInit::Kind::kHe);
  EXPECT_TRUE(config.use_batchnorm);
  EXPECT_DOUBLE_EQ(config.bn_momentum, 0.9);
  EXPECT_DOUBLE_EQ(config.bn_eps, 1e-6);

  proto.set_use_batchnorm(false);
  proto.set_bn_momentum(0.0);  // set to zero: not the default
  proto.mutable_weight_init()->set_kind(v1::WeightInit::STD);
  proto.mutable_weight_init()->set_std(0.05);
  proto.set_activation(v1::TANH);
  ASSERT_OK_AND_ASSIGN(config, NetworkConfigFromProto(proto, 784));
  EXPECT_FALSE(config.use_batchnorm);
  EXPECT_DOUBLE_EQ(config.bn_momentum, 0.0);
  EXPECT_EQ(config.weight_init.kind, WeightInit::Kind::kStd);
  EXPECT_DOUBLE_EQ(config.weight_init.std, 0.05);
  EXPECT_EQ(config.activation, Activation::kTanh);

  // Round trip through the explicit proto.
  ASSERT_OK_AND_ASSIGN(NetworkConfig again, NetworkConfigFromProto(NetworkConfigToProto(config), 1));
  EXPECT_EQ(NetworkConfigToProto(again).SerializeAsString(),
            NetworkConfigToProto(config).SerializeAsString());
}

TEST(ProtoConvertTest, BadNetworkConfigsAreInvalidArgument) {
  v1::NetworkConfig proto;
  EXPECT_THAT(NetworkConfigFromProto(proto, 784), StatusIs(absl::StatusCode::kInvalidArgument));
  proto.add_hidden_sizes(10);
  proto.set_activation(static_cast<v1::Activation>(17));
  EXPECT_THAT(NetworkConfigFromProto(proto, 784), StatusIs(absl::StatusCode::kInvalidArgument));
  proto.set_activation(v1::RELU);
  proto.mutable_weight_init()->set_kind(v1::WeightInit::STD);  // std 0
  EXPECT_THAT(NetworkConfigFromProto(proto, 784), StatusIs(absl::StatusCode::kInvalidArgument));
  proto.mutable_weight_init()->set_std(0.01);
  proto.set_dropout_ratio(1.0);
  EXPECT_THAT(NetworkConfigFromProto(proto, 784), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ProtoConvertTest, OptimizerDefaultsAreTheBooks) {
  v1::OptimizerConfig proto;
  ASSERT_OK_AND_ASSIGN(OptimizerConfig sgd, OptimizerConfigFromProto(proto));
  EXPECT_EQ(sgd.type, OptimizerType::kSgd);
  EXPECT_DOUBLE_EQ(sgd.learning_rate, 0.01);
  proto.set_type(v1::ADAM);
  ASSERT_OK_AND_ASSIGN(OptimizerConfig adam, OptimizerConfigFromProto(proto));
  EXPECT_DOUBLE_EQ(adam.learning_rate, 0.001);
  EXPECT_DOUBLE_EQ(adam.beta2, 0.999);
  proto.set_learning_rate(-1);
  EXPECT_THAT(OptimizerConfigFromProto(proto), StatusIs(absl::StatusCode::kInvalidArgument));
  proto.clear_learning_rate();
  proto.set_beta1(1.0);
  EXPECT_THAT(OptimizerConfigFromProto(proto), StatusIs(absl::StatusCode::kInvalidArgument));
  proto.Clear();
  proto.set_type(static_cast<v1::OptimizerType>(99));
  EXPECT_THAT(OptimizerConfigFromProto(proto), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ProtoConvertTest, TensorsMapWithoutCopyAndRoundTrip) {
  Matrix m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  v1::Tensor tensor;
  MatrixToTensor(m, &tensor);
  EXPECT_THAT(tensor.shape(), ::testing::ElementsAre(2, 3));
  EXPECT_THAT(tensor.values(), ::testing::ElementsAre(1, 2, 3, 4, 5, 6));  // row-major
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> map, MapTensor(tensor));
  EXPECT_EQ(map.data(), tensor.values().data());  // a view, not a copy
  EXPECT_EQ(Matrix(map), m);

  tensor.add_values(7);
  EXPECT_THAT(MapTensor(tensor), StatusIs(absl::StatusCode::kInvalidArgument));
  tensor.clear_shape();
  EXPECT_THAT(MapTensor(tensor), StatusIs(absl::StatusCode::kInvalidArgument));

  m(1, 2) = INFINITY;
  EXPECT_THAT(CheckFinite(m, "x"), StatusIs(absl::StatusCode::kInvalidArgument));

  std::map<std::string, Matrix> tensors = {{"W1", Matrix::Ones(2, 2)}, {"b1", Matrix::Zero(1, 2)}};
  google::protobuf::RepeatedPtrField<v1::NamedTensor> named;
  TensorsToProto(tensors, &named);
  ASSERT_OK_AND_ASSIGN(auto back, TensorsFromProto(named));
  EXPECT_EQ(back.size(), 2u);
  EXPECT_EQ(back.at("W1"), tensors.at("W1"));
  *named.Add() = named.Get(0);
  EXPECT_THAT(TensorsFromProto(named), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A shape whose element count does not fit in int64 is refused with the
// exact count (rows * cols in int64 overflowed: undefined, and the message
// said "needs -9223372036854775808 values").
TEST(ProtoConvertTest, StoredTensorShapesMustCountTheirValues) {
  v1::NamedTensor named;
  named.set_name("W1");
  named.mutable_tensor()->add_shape(2);
  named.mutable_tensor()->add_shape(3);
  for (int i = 0; i < 6; ++i) named.mutable_tensor()->add_values(i);
  EXPECT_TRUE(CheckNamedTensorShape(named).ok());
  named.mutable_tensor()->add_values(6);
  EXPECT_THAT(CheckNamedTensorShape(named),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("\"W1\" has shape with 6 elements but 7 values")));
  named.mutable_tensor()->set_shape(1, -3);
  EXPECT_THAT(CheckNamedTensorShape(named),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("negative")));
  // 2^32 * 2^32 wraps to 0 in 64 bits: with no values it must still be refused.
  named.mutable_tensor()->clear_values();
  named.mutable_tensor()->set_shape(0, int64_t{1} << 32);
  named.mutable_tensor()->set_shape(1, int64_t{1} << 32);
  EXPECT_THAT(CheckNamedTensorShape(named),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("overflows")));
}

TEST(ProtoConvertTest, ShapesBeyondInt64AreRefusedWithTheirExactElementCount) {
  struct Case {
    int64_t rows, cols;
    const char* product;
  };
  for (const Case& c : {Case{int64_t{1} << 40, int64_t{1} << 40, "1208925819614629174706176"},
                        Case{INT64_MAX, 2, "18446744073709551614"},
                        Case{INT64_MAX, INT64_MAX, "85070591730234615847396907784232501249"},
                        Case{int64_t{1} << 32, int64_t{1} << 31, "9223372036854775808"}}) {
    v1::Tensor tensor;
    tensor.add_shape(c.rows);
    tensor.add_shape(c.cols);
    tensor.add_values(1.0f);
    const absl::Status status = MapTensor(tensor).status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(status.message()),
                ::testing::HasSubstr(absl::StrCat("needs ", c.product, " values")));
    EXPECT_THAT(std::string(status.message()), ::testing::Not(::testing::HasSubstr("-")));
  }
}

TEST(ProtoConvertTest, CheckFiniteFindsEveryNonFiniteValueEvenInAStridedView) {
  // Finite extremes pass: the largest and smallest magnitudes, denormals, -0.
  Matrix big = Matrix::Zero(5, 7);
  big(1, 1) = std::numeric_limits<float>::max();
  big(1, 2) = -std::numeric_limits<float>::max();
  big(2, 3) = std::numeric_limits<float>::denorm_min();
  big(3, 4) = -0.0f;
  big(3, 5) = std::numeric_limits<float>::min();
  // A 3 x 5 block of a 5 x 7 matrix: rows are not contiguous with each other.
  const ConstMatrixRef<float> view = big.block(1, 1, 3, 5);
  EXPECT_OK(CheckFinite(view, "x"));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 5; ++c) {
        Matrix copy = big;
        copy(r + 1, c + 1) = bad;
        const absl::Status status = CheckFinite(copy.block(1, 1, 3, 5), "x");
        EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
        EXPECT_THAT(std::string(status.message()),
                    ::testing::HasSubstr(absl::StrCat("row ", r, " column ", c)));
      }
    }
    // Outside the view: not its business.
    Matrix copy = big;
    copy(0, 0) = bad;
    copy(4, 6) = bad;
    EXPECT_OK(CheckFinite(copy.block(1, 1, 3, 5), "x"));
  }
}

TEST(ProtoConvertTest, TimestampsRoundTripToTheMicrosecond) {
  const absl::Time t = absl::FromUnixMicros(1700000000123456);
  EXPECT_EQ(TimeFromProto(TimeToProto(t)), t);
  const absl::Time before_epoch = absl::FromUnixMicros(-1500000);
  EXPECT_EQ(TimeFromProto(TimeToProto(before_epoch)), before_epoch);
  EXPECT_GE(TimeToProto(before_epoch).nanos(), 0);
}

}  // namespace
}  // namespace bnserve
