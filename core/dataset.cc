#include "core/dataset.h"

#include <algorithm>

namespace bnserve {

Dataset TakeFirst(const Dataset& data, int limit) {
  const int n = limit <= 0 ? data.size() : std::min(limit, data.size());
  Dataset out;
  out.features = data.features.topRows(n);
  out.labels = data.labels.head(n);
  out.num_classes = data.num_classes;
  out.name = data.name;
  return out;
}

}  // namespace bnserve
