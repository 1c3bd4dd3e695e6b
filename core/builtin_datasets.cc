#include "core/builtin_datasets.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/idx_reader.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

constexpr const char* kBuiltinNames[] = {"mnist-digits", "fashion-mnist"};
constexpr int kNumClasses = 10;

bool IsBuiltinName(absl::string_view name) {
  for (const char* builtin : kBuiltinNames) {
    if (name == builtin) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<Split> ParseSplit(absl::string_view name) {
  if (name == "train") return Split::kTrain;
  if (name == "test") return Split::kTest;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split \"", name, "\"; expected train or test"));
}

std::vector<std::string> BuiltinDatasetNames() {
  return std::vector<std::string>(std::begin(kBuiltinNames), std::end(kBuiltinNames));
}

std::string DefaultDataDir() {
  const char* dir = std::getenv("BNSERVE_DATA_DIR");
  return dir != nullptr && dir[0] != '\0' ? std::string(dir) : std::string("var/data");
}

absl::StatusOr<Dataset> LoadBuiltinDataset(const std::string& data_dir,
                                           absl::string_view name, Split split,
                                           int limit) {
  if (!IsBuiltinName(name)) {
    return absl::NotFoundError(absl::StrCat("unknown built-in data set \"", name,
                                            "\"; available: ",
                                            absl::StrJoin(BuiltinDatasetNames(), ", ")));
  }
  const char* prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string dir = absl::StrCat(data_dir, "/", name, "/");
  const std::string images = absl::StrCat(dir, prefix, "-images-idx3-ubyte.gz");
  const std::string labels = absl::StrCat(dir, prefix, "-labels-idx1-ubyte.gz");
  absl::StatusOr<Dataset> data = ReadIdxDataset(
      images, labels, absl::StrCat(name, split == Split::kTrain ? "/train" : "/test"),
      kNumClasses);
  if (absl::IsNotFound(data.status())) {
    return absl::NotFoundError(absl::StrCat(data.status().message(),
                                            " (run scripts/setup.sh to prepare the data sets)"));
  }
  if (!data.ok()) return data.status();
  if (limit > 0 && limit < data->size()) return TakeFirst(*data, limit);
  return data;
}

}  // namespace bnserve
