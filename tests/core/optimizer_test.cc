#include "core/optimizer.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/eigen_types.h"
#include "core/parameter_ref.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOk;
using ::bnserve::testing::StatusIs;

// One 1x2 parameter "W" whose first element starts at 1 and second at -2.
// The second element's gradient is always 0, so it must never move.
struct OneParameter {
  Matrix value{{1.0f, -2.0f}};
  Matrix grad{{0.0f, 0.0f}};

  std::vector<ParameterRef<float>> Refs() { return {{"W", &value, &grad}}; }
};

// Runs `opt` for the gradients 0.5 then 0.25 on the first element and returns
// the first element after each step.
std::vector<float> TwoSteps(Optimizer* opt) {
  OneParameter p;
  std::vector<float> after;
  for (float g : {0.5f, 0.25f}) {
    p.grad(0, 0) = g;
    opt->Update(p.Refs());
    after.push_back(p.value(0, 0));
    EXPECT_EQ(p.value(0, 1), -2.0f) << "an element with zero gradient moved";
  }
  return after;
}

std::unique_ptr<Optimizer> Make(OptimizerType type, double lr) {
  OptimizerConfig config = DefaultOptimizerConfig(type);
  config.learning_rate = lr;
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = CreateOptimizer(config);
  EXPECT_THAT(opt, IsOk());
  return opt.ok() ? std::move(opt).value() : nullptr;
}

constexpr float kTol = 2e-6f;

TEST(OptimizerTest, SgdStep) {
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kSgd, 0.1);
  ASSERT_NE(opt, nullptr);
  const std::vector<float> w = TwoSteps(opt.get());
  EXPECT_NEAR(w[0], 0.95f, kTol);   // 1 - 0.1 * 0.5
  EXPECT_NEAR(w[1], 0.925f, kTol);  // 0.95 - 0.1 * 0.25
}

TEST(OptimizerTest, MomentumTwoSteps) {
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kMomentum, 0.1);
  ASSERT_NE(opt, nullptr);
  const std::vector<float> w = TwoSteps(opt.get());
  // v1 = -0.1 * 0.5 = -0.05; w = 0.95.
  EXPECT_NEAR(w[0], 0.95f, kTol);
  // v2 = 0.9 * -0.05 - 0.1 * 0.25 = -0.07; w = 0.88.
  EXPECT_NEAR(w[1], 0.88f, kTol);
}

TEST(OptimizerTest, NesterovTwoSteps) {
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kNesterov, 0.1);
  ASSERT_NE(opt, nullptr);
  const std::vector<float> w = TwoSteps(opt.get());
  // v1 = -0.05; w += 0.81 * -0.05 - 1.9 * 0.1 * 0.5 = -0.1355.
  EXPECT_NEAR(w[0], 0.8645f, kTol);
  // v2 = -0.07; w += 0.81 * -0.07 - 1.9 * 0.1 * 0.25 = -0.1042.
  EXPECT_NEAR(w[1], 0.7603f, kTol);
}

TEST(OptimizerTest, AdaGradTwoSteps) {
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kAdaGrad, 0.1);
  ASSERT_NE(opt, nullptr);
  const std::vector<float> w = TwoSteps(opt.get());
  // h = 0.25; w -= 0.1 * 0.5 / (0.5 + 1e-7).
  EXPECT_NEAR(w[0], 0.90000002f, kTol);
  // h = 0.3125; w -= 0.1 * 0.25 / (0.55901699 + 1e-7).
  EXPECT_NEAR(w[1], 0.85527867f, kTol);
}

TEST(OptimizerTest, RmsPropTwoSteps) {
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kRmsProp, 0.1);
  ASSERT_NE(opt, nullptr);
  const std::vector<float> w = TwoSteps(opt.get());
  // h = 0.01 * 0.25 = 0.0025; w -= 0.1 * 0.5 / (0.05 + 1e-7) = 0.999998.
  EXPECT_NEAR(w[0], 2.0e-6f, kTol);
  // h = 0.99 * 0.0025 + 0.01 * 0.0625 = 0.0031; w -= 0.025 / (0.05567764 + 1e-7).
  EXPECT_NEAR(w[1], -0.44901045f, 1e-5f);
}

TEST(OptimizerTest, AdamTwoStepsWithBookBiasCorrection) {
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kAdam, 0.1);
  ASSERT_NE(opt, nullptr);
  const std::vector<float> w = TwoSteps(opt.get());
  // lr_t = 0.1 * sqrt(0.001) / 0.1 = 0.031622777; m = 0.05; v = 0.00025;
  // w -= 0.031622777 * 0.05 / (0.015811388 + 1e-7).
  EXPECT_NEAR(w[0], 0.90000063f, kTol);
  // lr_t = 0.1 * sqrt(1 - 0.999^2) / (1 - 0.9^2) = 0.023531673; m = 0.07;
  // v = 0.00031225; w -= 0.023531673 * 0.07 / (0.017670597 + 1e-7).
  EXPECT_NEAR(w[1], 0.80678320f, 1e-5f);
}

TEST(OptimizerTest, StateIsKeyedByNameNotPosition) {
  // Two parameters updated by one Momentum optimizer, with their order in the
  // vector swapped on the second step, must match two separate optimizers.
  Matrix a{{1.0f}}, ga{{0.5f}}, b{{3.0f}}, gb{{-1.0f}};
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kMomentum, 0.1);
  ASSERT_NE(opt, nullptr);
  opt->Update({{"A", &a, &ga}, {"B", &b, &gb}});
  opt->Update({{"B", &b, &gb}, {"A", &a, &ga}});

  Matrix a_alone{{1.0f}}, b_alone{{3.0f}};
  std::unique_ptr<Optimizer> opt_a = Make(OptimizerType::kMomentum, 0.1);
  std::unique_ptr<Optimizer> opt_b = Make(OptimizerType::kMomentum, 0.1);
  for (int i = 0; i < 2; ++i) {
    opt_a->Update({{"A", &a_alone, &ga}});
    opt_b->Update({{"B", &b_alone, &gb}});
  }
  EXPECT_EQ(a(0, 0), a_alone(0, 0));
  EXPECT_EQ(b(0, 0), b_alone(0, 0));
  // 1 - 0.05 - (0.045 + 0.05) and 3 + 0.1 + (0.09 + 0.1).
  EXPECT_NEAR(a(0, 0), 0.855f, kTol);
  EXPECT_NEAR(b(0, 0), 3.29f, kTol);
}

TEST(OptimizerTest, UpdatesEveryElementOfAMatrix) {
  Matrix w = Matrix::Constant(3, 4, 1.0f);
  Matrix g(3, 4);
  for (int i = 0; i < g.size(); ++i) g.data()[i] = 0.1f * static_cast<float>(i);
  std::unique_ptr<Optimizer> opt = Make(OptimizerType::kSgd, 0.5);
  ASSERT_NE(opt, nullptr);
  opt->Update({{"W", &w, &g}});
  for (int i = 0; i < w.size(); ++i) {
    EXPECT_NEAR(w.data()[i], 1.0f - 0.05f * static_cast<float>(i), kTol) << "element " << i;
  }
}

TEST(OptimizerTest, BookDefaults) {
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kSgd).learning_rate, 0.01);
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kMomentum).learning_rate, 0.01);
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kNesterov).learning_rate, 0.01);
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kAdaGrad).learning_rate, 0.01);
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kRmsProp).learning_rate, 0.01);
  const OptimizerConfig adam = DefaultOptimizerConfig(OptimizerType::kAdam);
  EXPECT_EQ(adam.type, OptimizerType::kAdam);
  EXPECT_EQ(adam.learning_rate, 0.001);
  EXPECT_EQ(adam.beta1, 0.9);
  EXPECT_EQ(adam.beta2, 0.999);
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kMomentum).momentum, 0.9);
  EXPECT_EQ(DefaultOptimizerConfig(OptimizerType::kRmsProp).decay_rate, 0.99);
}

TEST(OptimizerTest, ParseRoundTripsEveryTypeCaseInsensitively) {
  for (OptimizerType type :
       {OptimizerType::kSgd, OptimizerType::kMomentum, OptimizerType::kNesterov,
        OptimizerType::kAdaGrad, OptimizerType::kRmsProp, OptimizerType::kAdam}) {
    const std::string name = OptimizerTypeName(type);
    ASSERT_OK_AND_ASSIGN(OptimizerType parsed, ParseOptimizerType(name));
    EXPECT_EQ(parsed, type) << name;
  }
  ASSERT_OK_AND_ASSIGN(OptimizerType adam, ParseOptimizerType("AdAm"));
  EXPECT_EQ(adam, OptimizerType::kAdam);
  ASSERT_OK_AND_ASSIGN(OptimizerType rms, ParseOptimizerType("RMSprop"));
  EXPECT_EQ(rms, OptimizerType::kRmsProp);
}

TEST(OptimizerTest, ParseRejectsUnknownNames) {
  EXPECT_THAT(ParseOptimizerType("adamw"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseOptimizerType(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseOptimizerType("sgd "), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(OptimizerTest, ValidateRejectsBadConfigs) {
  EXPECT_OK(ValidateOptimizerConfig(OptimizerConfig()));
  const auto bad = [](auto mutate) {
    OptimizerConfig config = DefaultOptimizerConfig(OptimizerType::kAdam);
    mutate(config);
    return ValidateOptimizerConfig(config);
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.learning_rate = 0; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.learning_rate = -0.1; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.learning_rate = std::nan(""); }),
              StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.learning_rate = INFINITY; }),
              StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.momentum = 1.0; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.momentum = -0.1; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.decay_rate = 1.5; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.beta1 = 1.0; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.beta2 = -1e-9; }), StatusIs(kInvalid));
  EXPECT_THAT(bad([](OptimizerConfig& c) { c.type = static_cast<OptimizerType>(42); }),
              StatusIs(kInvalid));
  EXPECT_OK(bad([](OptimizerConfig& c) { c.momentum = 0.0; }));

  OptimizerConfig config;
  config.learning_rate = -1;
  EXPECT_THAT(CreateOptimizer(config), StatusIs(kInvalid));
}

}  // namespace
}  // namespace bnserve
