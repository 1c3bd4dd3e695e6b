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

struct BuiltinDataset {
  const char* name;
  int train_size;
  int test_size;
};

constexpr BuiltinDataset kBuiltins[] = {
    {"mnist-digits", 8000, 2000},
    {"fashion-mnist", 60000, 10000},
};
constexpr int kNumClasses = 10;

const BuiltinDataset* FindBuiltin(absl::string_view name) {
  for (const BuiltinDataset& builtin : kBuiltins) {
    if (name == builtin.name) return &builtin;
  }
  return nullptr;
}

bool IsBuiltinName(absl::string_view name) { return FindBuiltin(name) != nullptr; }

}  // namespace

absl::StatusOr<Split> ParseSplit(absl::string_view name) {
  if (name == "train") return Split::kTrain;
  if (name == "test") return Split::kTest;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split \"", name, "\"; expected train or test"));
}

std::vector<std::string> BuiltinDatasetNames() {
  std::vector<std::string> names;
  for (const BuiltinDataset& builtin : kBuiltins) names.push_back(builtin.name);
  return names;
}

std::optional<int> BuiltinSplitSize(absl::string_view name, Split split) {
  const BuiltinDataset* builtin = FindBuiltin(name);
  if (builtin == nullptr) return std::nullopt;
  return split == Split::kTrain ? builtin->train_size : builtin->test_size;
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
