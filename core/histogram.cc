#include "core/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"

namespace bnserve {

absl::Status ValidateHistogramOptions(const HistogramOptions& options) {
  if (options.bins < 1 || options.bins > kMaxHistogramBins) {
    return absl::InvalidArgumentError(absl::StrCat("bins must be in [1, ", kMaxHistogramBins,
                                                   "], got ", options.bins));
  }
  if (options.range.has_value()) {
    const HistogramRange& range = *options.range;
    if (!std::isfinite(range.min) || !std::isfinite(range.max) || !(range.min < range.max)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a histogram range needs finite min < max, got [", range.min, ", ", range.max, "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Histogram> ComputeHistogram(absl::Span<const float> values,
                                           const HistogramOptions& options) {
  if (absl::Status valid = ValidateHistogramOptions(options); !valid.ok()) return valid;
  Histogram h;
  h.count = static_cast<int64_t>(values.size());
  h.counts.assign(static_cast<size_t>(options.bins), 0);

  // First pass: finiteness, the sum and the values' own range.
  double sum = 0;
  double lowest = 0;
  double highest = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("value ", i, " of ", values.size(), " is not finite (", v, ")"));
    }
    sum += v;
    if (i == 0 || v < lowest) lowest = v;
    if (i == 0 || v > highest) highest = v;
  }
  if (values.empty()) {
    if (options.range.has_value()) {
      h.min = options.range->min;
      h.max = options.range->max;
    }
    return h;
  }
  const double n = static_cast<double>(values.size());
  h.mean = sum / n;
  h.min = options.range.has_value() ? options.range->min : lowest;
  h.max = options.range.has_value() ? options.range->max : highest;

  // Second pass: the squared deviations (two passes: no cancellation) and the bins.
  const int bins = options.bins;
  const double width = (h.max - h.min) / bins;
  double squares = 0;
  for (const float value : values) {
    const double v = value;
    squares += (v - h.mean) * (v - h.mean);
    if (v < h.min) {
      ++h.below;
      continue;
    }
    if (v > h.max) {
      ++h.above;
      continue;
    }
    int bin = bins - 1;  // max itself, and every value when min == max
    if (width > 0) {
      bin = static_cast<int>(std::floor((v - h.min) / (h.max - h.min) * bins));
      bin = std::clamp(bin, 0, bins - 1);
      // Rounding of the division may land one bin off the stated edges
      // min + i * w: move to the bin whose edges contain v.
      if (bin > 0 && v < h.min + bin * width) --bin;
      if (bin + 1 < bins && v >= h.min + (bin + 1) * width) ++bin;
    }
    ++h.counts[static_cast<size_t>(bin)];
  }
  h.std = std::sqrt(squares / n);
  return h;
}

}  // namespace bnserve
