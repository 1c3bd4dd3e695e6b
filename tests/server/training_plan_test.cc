#include "server/training_plan.h"

#include <cstdint>
#include <optional>
#include <string>

#include "core/dataset.h"
#include "core/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::StatusIs;
using ::testing::HasSubstr;

class TrainingPlanTest : public ::testing::Test {
 protected:
  DataResolver data_{"var/data"};
  JobLimits limits_;
};

TEST_F(TrainingPlanTest, EveryDefaultIsAppliedOnce) {
  v1::TrainRequest request = SmallTrainRequest("m", 0);
  request.set_batch_size(0);
  request.mutable_network()->clear_output_size();
  request.mutable_optimizer()->Clear();
  for (int i = 0; i < request.train_data().inline_data().labels_size(); ++i) {
    request.mutable_train_data()->mutable_inline_data()->set_labels(i, 0);
  }
  request.clear_validation_data();
  ASSERT_OK_AND_ASSIGN(TrainingPlan plan, PlanTraining(request, limits_, data_));
  EXPECT_EQ(plan.model_name, "m");
  EXPECT_EQ(plan.trainer.epochs, kDefaultEpochs);
  EXPECT_EQ(plan.trainer.batch_size, kDefaultBatchSize);
  EXPECT_EQ(plan.trainer.seed, 42u);
  EXPECT_EQ(plan.trainer.optimizer.type, OptimizerType::kSgd);
  EXPECT_DOUBLE_EQ(plan.trainer.optimizer.learning_rate, 0.01);
  EXPECT_EQ(plan.network.output_size, 10);
  // The inline data fix the input size and are parsed once, into the plan.
  EXPECT_EQ(plan.network.input_size, 12);
  ASSERT_NE(plan.train_data.inline_data, nullptr);
  EXPECT_EQ(plan.train_data.inline_data->size(), 200);
  EXPECT_EQ(plan.train_data.max_rows, 200);
  EXPECT_FALSE(plan.validation_data.has_value());
}

TEST_F(TrainingPlanTest, BuiltinDataLeaveTheInputOpenAndBoundTheRows) {
  v1::TrainRequest request = SmallTrainRequest("m", 1);
  request.mutable_network()->set_output_size(10);
  request.mutable_train_data()->mutable_builtin()->set_name("mnist-digits");
  request.mutable_validation_data()->mutable_builtin()->set_name("fashion-mnist");
  request.mutable_validation_data()->mutable_builtin()->set_split(v1::TEST);
  ASSERT_OK_AND_ASSIGN(TrainingPlan plan, PlanTraining(request, limits_, data_));
  EXPECT_EQ(plan.network.input_size, 0);  // open: it comes with the data
  EXPECT_EQ(plan.train_data.inline_data, nullptr);
  EXPECT_EQ(plan.train_data.max_rows, 8000);
  ASSERT_TRUE(plan.validation_data.has_value());
  EXPECT_EQ(plan.validation_data->max_rows, 10000);
  request.mutable_train_data()->mutable_builtin()->set_limit(300);
  ASSERT_OK_AND_ASSIGN(plan, PlanTraining(request, limits_, data_));
  EXPECT_EQ(plan.train_data.max_rows, 300);
  request.mutable_train_data()->mutable_builtin()->set_limit(100000);
  ASSERT_OK_AND_ASSIGN(plan, PlanTraining(request, limits_, data_));
  EXPECT_EQ(plan.train_data.max_rows, 8000);

  // The worker fills the input size in from the data.
  Dataset train;
  train.name = "digits";
  train.features = Matrix::Zero(5, 784);
  train.labels = Labels::Zero(5);
  ASSERT_OK_AND_ASSIGN(NetworkConfig network, NetworkForData(plan, train, Dataset(), limits_));
  EXPECT_EQ(network.input_size, 784);
  Dataset narrow = train;
  narrow.name = "narrow";
  narrow.features = Matrix::Zero(5, 783);
  const absl::Status status = NetworkForData(plan, train, narrow, limits_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("network.input_size is 784 but narrow has 783 features"));
}

TEST_F(TrainingPlanTest, ChecksAreTheCoresOwn) {
  v1::TrainRequest request = SmallTrainRequest("m", 1);
  request.set_batch_size(1);
  absl::Status status = PlanTraining(request, limits_, data_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  TrainerOptions one_row;
  one_row.batch_size = 1;
  NetworkConfig bn;
  EXPECT_EQ(status.message(), ValidateTrainerOptions(one_row, bn).message());

  request = SmallTrainRequest("m", limits_.max_epochs + 1);
  status = PlanTraining(request, limits_, data_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("epochs must be in [1, 200] (0: 20)"));

  request = SmallTrainRequest("m", 1);
  request.mutable_validation_data()->mutable_inline_data()->set_labels(0, 9);
  status = PlanTraining(request, limits_, data_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("validation_data: "));

  request = SmallTrainRequest("m", 1);
  request.mutable_network()->set_input_size(13);
  status = PlanTraining(request, limits_, data_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("network.input_size is 13 but the inline data have 12 features"));
}

TEST_F(TrainingPlanTest, MemoryIsThatOfTheBatchTheTrainerUses) {
  NetworkConfig network;  // the seed network, 784 inputs
  const int64_t whole_set = EstimateTrainingBytes(network, 1000);
  JobLimits limits;
  limits.max_job_bytes = whole_set;
  EXPECT_OK(CheckTrainingMemory(network, 1000000, 1000, limits));
  EXPECT_OK(CheckTrainingMemory(network, 1000, std::nullopt, limits));
  EXPECT_THAT(CheckTrainingMemory(network, 1001, 1001, limits),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // Unknown rows: the request's batch is all there is to go by.
  const absl::Status status = CheckTrainingMemory(network, 1000000, std::nullopt, limits);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), HasSubstr("batch_size 1000000"));
  EXPECT_EQ(EffectiveBatchSize(1000000, 1000), 1000);
  EXPECT_EQ(EffectiveBatchSize(100, 1000), 100);
}

}  // namespace
}  // namespace bnserve
