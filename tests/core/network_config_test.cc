// Parsing and naming of activations and weight inits, and config validation.
#include "core/network_config.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOk;
using ::bnserve::testing::StatusIs;

TEST(NetworkConfigTest, ParseActivationRoundTrips) {
  for (Activation a : {Activation::kRelu, Activation::kSigmoid, Activation::kTanh}) {
    ASSERT_OK_AND_ASSIGN(Activation parsed, ParseActivation(ActivationName(a)));
    EXPECT_EQ(parsed, a);
  }
  ASSERT_OK_AND_ASSIGN(Activation upper, ParseActivation("ReLU"));
  EXPECT_EQ(upper, Activation::kRelu);
  EXPECT_THAT(ParseActivation("softplus"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseActivation(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(NetworkConfigTest, ParseWeightInitAcceptsTheBooksSpellings) {
  ASSERT_OK_AND_ASSIGN(WeightInit he, ParseWeightInit("he"));
  EXPECT_EQ(he.kind, WeightInit::Kind::kHe);
  ASSERT_OK_AND_ASSIGN(WeightInit relu, ParseWeightInit("relu"));
  EXPECT_EQ(relu.kind, WeightInit::Kind::kHe);
  ASSERT_OK_AND_ASSIGN(WeightInit xavier, ParseWeightInit("xavier"));
  EXPECT_EQ(xavier.kind, WeightInit::Kind::kXavier);
  ASSERT_OK_AND_ASSIGN(WeightInit sigmoid, ParseWeightInit("sigmoid"));
  EXPECT_EQ(sigmoid.kind, WeightInit::Kind::kXavier);
  ASSERT_OK_AND_ASSIGN(WeightInit number, ParseWeightInit("0.05"));
  EXPECT_EQ(number.kind, WeightInit::Kind::kStd);
  EXPECT_DOUBLE_EQ(number.std, 0.05);
  for (const char* bad : {"0", "-0.1", "abc", "", "nan", "inf", "1e400"}) {
    EXPECT_THAT(ParseWeightInit(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(NetworkConfigTest, WeightInitNameRoundTrips) {
  WeightInit init;
  init.kind = WeightInit::Kind::kStd;
  for (double std : {0.01, 0.05, 1.0, 0.1 + 0.2, 1e-300}) {
    init.std = std;
    const std::string name = WeightInitName(init);
    ASSERT_OK_AND_ASSIGN(WeightInit parsed, ParseWeightInit(name));
    EXPECT_EQ(parsed.kind, WeightInit::Kind::kStd) << name;
    EXPECT_EQ(parsed.std, std) << name;
  }
  init.std = 0.01;
  EXPECT_EQ(WeightInitName(init), "0.01");
  init.kind = WeightInit::Kind::kHe;
  EXPECT_EQ(WeightInitName(init), "he");
  init.kind = WeightInit::Kind::kXavier;
  EXPECT_EQ(WeightInitName(init), "xavier");
}

TEST(NetworkConfigTest, ValidateNamesTheOffendingField) {
  EXPECT_THAT(ValidateNetworkConfig(NetworkConfig()), IsOk());
  struct Case {
    void (*mutate)(NetworkConfig*);
    const char* field;
  };
  const Case cases[] = {
      {[](NetworkConfig* c) { c->input_size = -3; }, "input_size"},
      {[](NetworkConfig* c) { c->hidden_sizes = {10, 0}; }, "hidden_sizes[1]"},
      {[](NetworkConfig* c) { c->output_size = 0; }, "output_size"},
      {[](NetworkConfig* c) { c->dropout_ratio = -0.1; }, "dropout_ratio"},
      {[](NetworkConfig* c) { c->dropout_ratio = 1.0; }, "dropout_ratio"},
      {[](NetworkConfig* c) { c->weight_decay_lambda = -1.0; }, "weight_decay_lambda"},
      {[](NetworkConfig* c) {
         c->weight_decay_lambda = std::numeric_limits<double>::infinity();
       },
       "weight_decay_lambda"},
      {[](NetworkConfig* c) { c->bn_momentum = 1.0; }, "bn_momentum"},
      {[](NetworkConfig* c) { c->bn_eps = 0.0; }, "bn_eps"},
      {[](NetworkConfig* c) { c->bn_eps = std::nan(""); }, "bn_eps"},
      {[](NetworkConfig* c) { c->weight_init.std = -1.0; }, "weight_init.std"},
  };
  for (const Case& test_case : cases) {
    NetworkConfig config;
    test_case.mutate(&config);
    const absl::Status status = ValidateNetworkConfig(config);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument)) << test_case.field;
    EXPECT_NE(status.message().find(test_case.field), absl::string_view::npos)
        << status.message();
  }
  // std is only checked when it is used.
  NetworkConfig he;
  he.weight_init.kind = WeightInit::Kind::kHe;
  he.weight_init.std = -1.0;
  EXPECT_THAT(ValidateNetworkConfig(he), IsOk());
  // No hidden layer is a valid (softmax regression) network.
  NetworkConfig linear;
  linear.hidden_sizes.clear();
  EXPECT_THAT(ValidateNetworkConfig(linear), IsOk());
}

TEST(NetworkConfigTest, ParameterCountMatchesTheSeedNetworkByHand) {
  // 784-100x5-10 with BN: W 784*100 + 4*100*100 + 100*10, b 5*100 + 10,
  // gamma/beta/running_mean/running_var 4 * 5*100.
  NetworkConfig config;
  EXPECT_EQ(NetworkParameterCount(config), 78400 + 40000 + 1000 + 510 + 2000);
  config.use_batchnorm = false;
  EXPECT_EQ(NetworkParameterCount(config), 78400 + 40000 + 1000 + 510);
}

// A request's config decides how much the network allocates: sizes that
// would need terabytes (or overflow an int product) are InvalidArgument
// naming the limit, before anything is allocated.
TEST(NetworkConfigTest, ValidateRejectsNetworksBeyondTheSizeLimits) {
  struct Case {
    void (*mutate)(NetworkConfig*);
    const char* what;
  };
  const Case cases[] = {
      {[](NetworkConfig* c) { c->hidden_sizes = {1 << 30}; }, "hidden_sizes[0]"},
      {[](NetworkConfig* c) { c->hidden_sizes = {100, kMaxLayerSize + 1}; }, "hidden_sizes[1]"},
      {[](NetworkConfig* c) { c->output_size = std::numeric_limits<int>::max(); }, "output_size"},
      // The 1-1-16384 model: its confusion matrix alone was 2 GiB.
      {[](NetworkConfig* c) { c->output_size = kMaxClasses + 1; }, "output_size"},
      {[](NetworkConfig* c) { c->input_size = kMaxInputSize + 1; }, "input_size"},
      {[](NetworkConfig* c) { c->hidden_sizes.assign(kMaxHiddenLayers + 1, 1); }, "layers"},
      // Each size within its limit, the product of neighbours not.
      {[](NetworkConfig* c) { c->hidden_sizes = {kMaxLayerSize, kMaxLayerSize}; },
       "parameters"},
      {[](NetworkConfig* c) {
         c->input_size = kMaxInputSize;
         c->hidden_sizes = {100};
       },
       "parameters"},
  };
  for (const Case& test_case : cases) {
    NetworkConfig config;
    test_case.mutate(&config);
    const absl::Status status = ValidateNetworkConfig(config);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument)) << test_case.what;
    EXPECT_NE(status.message().find(test_case.what), absl::string_view::npos)
        << status.message();
  }
  // The limits themselves are allowed.
  NetworkConfig wide;
  wide.hidden_sizes = {kMaxLayerSize};
  EXPECT_THAT(ValidateNetworkConfig(wide), IsOk());
  NetworkConfig many_classes;
  many_classes.output_size = kMaxClasses;
  EXPECT_THAT(ValidateNetworkConfig(many_classes), IsOk());
  NetworkConfig deep;
  deep.hidden_sizes.assign(kMaxHiddenLayers, 10);
  EXPECT_THAT(ValidateNetworkConfig(deep), IsOk());
}

}  // namespace
}  // namespace bnserve
