// ComputeHistogram: exact counts on known values, the bin edges (the last
// bin includes max), a fixed range with below/above, degenerate inputs, and
// mean/std in double.
#include "core/histogram.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

HistogramOptions Bins(int bins) {
  HistogramOptions options;
  options.bins = bins;
  return options;
}

HistogramOptions BinsInRange(int bins, double min, double max) {
  HistogramOptions options = Bins(bins);
  options.range = HistogramRange{min, max};
  return options;
}

TEST(HistogramTest, CountsKnownValuesInTheirOwnRange) {
  // Range [0, 4], width 1: [0,1) [1,2) [2,3) [3,4].
  const std::vector<float> values = {0.0f, 0.5f, 1.0f, 1.5f, 1.75f, 3.0f, 4.0f};
  ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram(values, Bins(4)));
  EXPECT_EQ(h.min, 0.0);
  EXPECT_EQ(h.max, 4.0);
  EXPECT_THAT(h.counts, ElementsAre(2, 3, 0, 2));
  EXPECT_EQ(h.below, 0);
  EXPECT_EQ(h.above, 0);
  EXPECT_EQ(h.count, 7);
}

TEST(HistogramTest, AnEdgeBelongsToTheBinItStartsAndMaxToTheLastBin) {
  const std::vector<float> values = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f};
  ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram(values, Bins(4)));
  EXPECT_THAT(h.counts, ElementsAre(1, 1, 1, 2));
}

TEST(HistogramTest, EveryValueLandsInTheBinWhoseStatedEdgesContainIt) {
  // Ten bins of width 0.1 over [-0.3, 0.7]: no edge is exact in binary, so a
  // plain floor((v - min) / w) puts some values next to the edge one bin off.
  const HistogramOptions options = BinsInRange(10, -0.3, 0.7);
  const double width = (0.7 - -0.3) / 10;
  std::vector<float> probes;
  for (int i = 0; i <= 10; ++i) {
    const float edge = static_cast<float>(-0.3 + i * width);
    probes.push_back(edge);
    probes.push_back(std::nextafter(edge, -1.0f));
    probes.push_back(std::nextafter(edge, 1.0f));
  }
  for (const float v : probes) {
    ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram(std::vector<float>{v}, options));
    if (v < -0.3) {
      EXPECT_EQ(h.below, 1) << v;
      continue;
    }
    if (v > 0.7) {
      EXPECT_EQ(h.above, 1) << v;
      continue;
    }
    const auto it = std::find(h.counts.begin(), h.counts.end(), 1);
    ASSERT_NE(it, h.counts.end()) << v;
    const int bin = static_cast<int>(it - h.counts.begin());
    const double lo = h.min + bin * width;
    const double hi = h.min + (bin + 1) * width;
    EXPECT_GE(static_cast<double>(v), lo) << "value " << v << " in bin " << bin;
    if (bin < 9) {
      EXPECT_LT(static_cast<double>(v), hi) << "value " << v << " in bin " << bin;
    }
  }
}

TEST(HistogramTest, AFixedRangeCountsValuesOutsideItBelowAndAbove) {
  const std::vector<float> values = {-2.0f, -1.0f, -0.25f, 0.25f, 1.0f, 1.5f, 3.0f};
  ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram(values, BinsInRange(2, -1.0, 1.0)));
  EXPECT_EQ(h.min, -1.0);
  EXPECT_EQ(h.max, 1.0);
  EXPECT_THAT(h.counts, ElementsAre(2, 2));  // {-1, -0.25}, {0.25, 1}
  EXPECT_EQ(h.below, 1);
  EXPECT_EQ(h.above, 2);
  EXPECT_EQ(h.count, 7);
  // Mean and std are of every value, the outside ones included.
  EXPECT_DOUBLE_EQ(h.mean, 2.5 / 7);
}

TEST(HistogramTest, MeanAndBiasedStdAreComputedInDouble) {
  // 1e8 + {1, 2, 3, 4} is not exact in float; values exact in float:
  const std::vector<float> values = {1.0f, 2.0f, 3.0f, 4.0f};
  ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram(values, Bins(3)));
  EXPECT_DOUBLE_EQ(h.mean, 2.5);
  EXPECT_DOUBLE_EQ(h.std, std::sqrt(1.25));  // numpy's np.std: divided by n

  // A float accumulator loses these small deviations around a large mean.
  std::vector<float> large(1000);
  for (size_t i = 0; i < large.size(); ++i) large[i] = 4096.0f + (i % 2 == 0 ? 0.5f : -0.5f);
  ASSERT_OK_AND_ASSIGN(Histogram l, ComputeHistogram(large, Bins(2)));
  EXPECT_DOUBLE_EQ(l.mean, 4096.0);
  EXPECT_DOUBLE_EQ(l.std, 0.5);
  EXPECT_THAT(l.counts, ElementsAre(500, 500));
}

TEST(HistogramTest, EqualValuesFallInTheLastBin) {
  const std::vector<float> values = {0.5f, 0.5f, 0.5f};
  ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram(values, Bins(3)));
  EXPECT_EQ(h.min, 0.5);
  EXPECT_EQ(h.max, 0.5);
  EXPECT_THAT(h.counts, ElementsAre(0, 0, 3));
  EXPECT_EQ(h.std, 0.0);
}

TEST(HistogramTest, NoValuesGiveZeroCounts) {
  ASSERT_OK_AND_ASSIGN(Histogram h, ComputeHistogram({}, Bins(2)));
  EXPECT_THAT(h.counts, ElementsAre(0, 0));
  EXPECT_EQ(h.count, 0);
  EXPECT_EQ(h.mean, 0.0);
  ASSERT_OK_AND_ASSIGN(Histogram r, ComputeHistogram({}, BinsInRange(2, 0, 1)));
  EXPECT_EQ(r.max, 1.0);
}

TEST(HistogramTest, RejectsBadOptionsAndNonFiniteValues) {
  const std::vector<float> values = {1.0f};
  EXPECT_THAT(ComputeHistogram(values, Bins(0)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ComputeHistogram(values, Bins(kMaxHistogramBins + 1)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(ComputeHistogram(values, Bins(kMaxHistogramBins)).status());
  EXPECT_THAT(ComputeHistogram(values, BinsInRange(3, 1.0, 1.0)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ComputeHistogram(values, BinsInRange(3, 0.0, INFINITY)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<float> nan = {1.0f, NAN};
  const absl::Status status = ComputeHistogram(nan, Bins(3)).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("value 1"));
}

}  // namespace
}  // namespace bnserve
