// An in-memory labelled data set: one row of features per sample, in [0, 1]
// for image data, and an integer class label per row. A plain value type:
// const access may be shared between threads; mutation needs external
// synchronization (the server shares loaded data sets as const).
#ifndef BNSERVE_CORE_DATASET_H_
#define BNSERVE_CORE_DATASET_H_

#include <string>

#include "core/eigen_types.h"

namespace bnserve {

struct Dataset {
  Matrix features;      // n x d
  Labels labels;        // n
  int num_classes = 10;
  std::string name;     // for messages, e.g. "mnist-digits/train"

  int size() const { return static_cast<int>(features.rows()); }
  int feature_size() const { return static_cast<int>(features.cols()); }
};

// The first min(limit, size) rows (all rows when limit <= 0).
Dataset TakeFirst(const Dataset& data, int limit);

}  // namespace bnserve

#endif  // BNSERVE_CORE_DATASET_H_
