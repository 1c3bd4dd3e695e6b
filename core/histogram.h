// Histogram: the distribution of a tensor's values in equal-width bins, with
// their mean and standard deviation (the book's activation-distribution
// figures, section 6.2.2: plt.hist(a.flatten(), 30, range=(0, 1))).
//
//   HistogramOptions options;          // 30 bins over the values' own range
//   options.range = HistogramRange{0.0, 1.0};
//   ASSIGN_OR_RETURN(Histogram h, ComputeHistogram(values, options));
//
// Bin i covers [min + i*w, min + (i+1)*w) with w = (max - min) / bins; the
// last bin includes max. Without a range, [min, max] is the values' own
// minimum and maximum, so nothing falls outside; when every value is the
// same (min == max), all of them are in the last bin. With a range, values
// below min and above max are counted in `below` and `above` only. The mean
// and the biased standard deviation (divided by n, as numpy's std) are those
// of all the values, in or out of range, accumulated in double.
//
// Stateless functions: thread-safe.
#ifndef BNSERVE_CORE_HISTOGRAM_H_
#define BNSERVE_CORE_HISTOGRAM_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace bnserve {

inline constexpr int kDefaultHistogramBins = 30;
inline constexpr int kMaxHistogramBins = 1000;

struct HistogramRange {
  double min = 0;
  double max = 1;
};

struct HistogramOptions {
  // 1 to kMaxHistogramBins.
  int bins = kDefaultHistogramBins;
  // The bins' fixed range (min < max, both finite); unset: the values' own.
  std::optional<HistogramRange> range;
};

struct Histogram {
  // The range of the bins (0 and 0 for no values without a fixed range).
  double min = 0;
  double max = 0;
  std::vector<int64_t> counts;  // options.bins entries
  int64_t below = 0;
  int64_t above = 0;
  // Of all the values; 0 for no values.
  double mean = 0;
  double std = 0;
  int64_t count = 0;  // values.size()
};

// InvalidArgument unless 1 <= bins <= kMaxHistogramBins and a range, if
// given, is finite with min < max.
absl::Status ValidateHistogramOptions(const HistogramOptions& options);

// The histogram of `values`. InvalidArgument for options
// ValidateHistogramOptions rejects, or for a value that is not finite (its
// index in `values` is named).
absl::StatusOr<Histogram> ComputeHistogram(absl::Span<const float> values,
                                           const HistogramOptions& options);

}  // namespace bnserve

#endif  // BNSERVE_CORE_HISTOGRAM_H_
