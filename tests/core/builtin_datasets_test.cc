#include "core/builtin_datasets.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(BuiltinDatasetsTest, Names) {
  EXPECT_THAT(BuiltinDatasetNames(), ElementsAre("mnist-digits", "fashion-mnist"));
}

TEST(BuiltinDatasetsTest, ParseSplit) {
  ASSERT_OK_AND_ASSIGN(Split train, ParseSplit("train"));
  EXPECT_EQ(train, Split::kTrain);
  ASSERT_OK_AND_ASSIGN(Split test, ParseSplit("test"));
  EXPECT_EQ(test, Split::kTest);
  EXPECT_THAT(ParseSplit("validation"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BuiltinDatasetsTest, MnistDigitsTrainAndTest) {
  ASSERT_OK_AND_ASSIGN(Dataset train,
                       LoadBuiltinDataset(DefaultDataDir(), "mnist-digits", Split::kTrain));
  ASSERT_OK_AND_ASSIGN(Dataset test,
                       LoadBuiltinDataset(DefaultDataDir(), "mnist-digits", Split::kTest));
  EXPECT_EQ(train.name, "mnist-digits/train");
  EXPECT_EQ(test.name, "mnist-digits/test");
  for (const Dataset* data : {&train, &test}) {
    EXPECT_EQ(data->feature_size(), 784) << data->name;
    EXPECT_EQ(data->labels.size(), data->size()) << data->name;
    EXPECT_EQ(data->num_classes, 10);
    EXPECT_GE(data->features.minCoeff(), 0.0f) << data->name;
    EXPECT_LE(data->features.maxCoeff(), 1.0f) << data->name;
    EXPECT_EQ(data->features.maxCoeff(), 1.0f) << data->name << ": no saturated pixel";
    EXPECT_GE(data->labels.minCoeff(), 0);
    EXPECT_LE(data->labels.maxCoeff(), 9);
  }
  EXPECT_EQ(train.size(), 8000);
  EXPECT_EQ(test.size(), 2000);

  // The first 1,000 training images hold each class exactly 100 times.
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 1000; ++i) ++counts[train.labels(i)];
  EXPECT_THAT(counts, ::testing::Each(100));
  // Digits: mostly background, some ink, in every image.
  const float mean = train.features.mean();
  EXPECT_GT(mean, 0.05f);
  EXPECT_LT(mean, 0.3f);
  EXPECT_GT(train.features.rowwise().maxCoeff().minCoeff(), 0.5f);
}

TEST(BuiltinDatasetsTest, LimitTakesTheFirstRows) {
  ASSERT_OK_AND_ASSIGN(Dataset all,
                       LoadBuiltinDataset(DefaultDataDir(), "mnist-digits", Split::kTrain));
  ASSERT_OK_AND_ASSIGN(Dataset first, LoadBuiltinDataset(DefaultDataDir(), "mnist-digits",
                                                         Split::kTrain, 1000));
  EXPECT_EQ(first.size(), 1000);
  EXPECT_EQ(first.features, all.features.topRows(1000));
  EXPECT_EQ(first.labels, all.labels.head(1000));
  ASSERT_OK_AND_ASSIGN(Dataset big, LoadBuiltinDataset(DefaultDataDir(), "mnist-digits",
                                                       Split::kTest, 1000000));
  EXPECT_EQ(big.size(), 2000);
}

// The table of split sizes (known without reading a file) says what the
// prepared files hold.
TEST(BuiltinDatasetsTest, SplitSizesAreThoseOfThePreparedFiles) {
  for (const std::string& name : BuiltinDatasetNames()) {
    for (Split split : {Split::kTrain, Split::kTest}) {
      ASSERT_OK_AND_ASSIGN(Dataset data, LoadBuiltinDataset(DefaultDataDir(), name, split));
      EXPECT_EQ(BuiltinSplitSize(name, split), data.size()) << data.name;
    }
  }
  EXPECT_EQ(BuiltinSplitSize("cifar-10", Split::kTrain), std::nullopt);
}

TEST(BuiltinDatasetsTest, UnknownNameIsNotFound) {
  EXPECT_THAT(LoadBuiltinDataset(DefaultDataDir(), "cifar-10", Split::kTrain),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(LoadBuiltinDataset(DefaultDataDir(), "../mnist-digits", Split::kTrain),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(BuiltinDatasetsTest, MissingDataDirIsNotFoundAndSaysWhatToRun) {
  absl::StatusOr<Dataset> data = LoadBuiltinDataset(
      ::testing::TempDir() + "/no-data-here", "fashion-mnist", Split::kTest);
  EXPECT_THAT(data, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("scripts/setup.sh"));
}

}  // namespace
}  // namespace bnserve
