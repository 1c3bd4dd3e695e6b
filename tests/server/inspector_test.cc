// Inspector::Parse: a request becomes a typed InspectQuery once (defaults
// applied, the input's kind kept, the inline rows viewed in place), and
// Run answers from it. Linked without gRPC: Inspector is server core.
#include "server/inspector.h"

#include <memory>
#include <variant>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "server/model_catalog.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::bnserve::testing::SyntheticData;
using ::bnserve::testing::TempPath;

class InspectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(store_, SqliteModelStore::Open(TempPath("inspector.db")));
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
    data_ = std::make_unique<DataResolver>("var/data");
    inspector_ = std::make_unique<Inspector>(catalog_.get(), data_.get(), InspectorOptions());
  }

  static v1::InspectRequest Untrained() {
    v1::InspectRequest request;
    v1::NetworkConfig* network = request.mutable_untrained()->mutable_network();
    network->set_input_size(6);
    network->add_hidden_sizes(5);
    network->add_hidden_sizes(4);
    request.mutable_untrained()->set_seed(3);
    request.set_random_normal_rows(20);
    return request;
  }

  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<DataResolver> data_;
  std::unique_ptr<Inspector> inspector_;
};

TEST_F(InspectorTest, ParseAppliesTheDefaultsOnce) {
  ASSERT_OK_AND_ASSIGN(InspectQuery query, inspector_->Parse(Untrained()));
  EXPECT_EQ(query.histogram.bins, kDefaultHistogramBins);
  EXPECT_FALSE(query.histogram.range.has_value());
  EXPECT_EQ(query.mode, BnMode::kInference);
  const auto* untrained = std::get_if<InspectQuery::Untrained>(&query.network);
  ASSERT_NE(untrained, nullptr);
  EXPECT_EQ(untrained->seed, 3u);
  EXPECT_TRUE(untrained->config.use_batchnorm);  // proto default: on
  EXPECT_EQ(untrained->config.output_size, 10);
  const auto* random = std::get_if<InspectQuery::RandomNormalRows>(&query.input);
  ASSERT_NE(random, nullptr);
  EXPECT_EQ(random->rows, 20);
}

TEST_F(InspectorTest, InlineRowsAreViewedInPlaceAndRangeIsKept) {
  v1::InspectRequest request = Untrained();
  *request.mutable_inputs() = SyntheticData(3, 6, 2, 1).features();
  request.set_range_min(-2);
  request.set_range_max(2);
  request.set_bins(7);
  ASSERT_OK_AND_ASSIGN(InspectQuery query, inspector_->Parse(request));
  const auto* rows = std::get_if<InspectQuery::InlineRows>(&query.input);
  ASSERT_NE(rows, nullptr);
  EXPECT_EQ(rows->values.data(), request.inputs().values().data());
  EXPECT_EQ(rows->values.rows(), 3);
  ASSERT_TRUE(query.histogram.range.has_value());
  EXPECT_EQ(query.histogram.range->min, -2);
  EXPECT_EQ(query.histogram.bins, 7);

  v1::InspectResponse response;
  ASSERT_OK(inspector_->Run(query, &response));
  EXPECT_EQ(response.num_examples(), 3);
  ASSERT_EQ(response.layers_size(), 2);
  EXPECT_EQ(response.layers(1).affine_output().counts_size(), 7);
  EXPECT_EQ(response.layers(1).gamma_size(), 4);
}

TEST_F(InspectorTest, AnErrorLeavesTheResponseUnchanged) {
  v1::InspectRequest request = Untrained();
  *request.mutable_inputs() = SyntheticData(3, 5, 2, 1).features();  // 5 features, not 6
  v1::InspectResponse response;
  response.set_model_name("untouched");
  EXPECT_THAT(inspector_->Inspect(request, &response),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(response.model_name(), "untouched");
  EXPECT_EQ(response.layers_size(), 0);
}

}  // namespace
}  // namespace bnserve
