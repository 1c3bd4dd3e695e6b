#include "client/data_dir.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bnserve {
namespace {

namespace fs = std::filesystem;

bool IsDirectory(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

// The search's candidates, in order, each once, as normalized paths.
std::vector<std::string> Candidates(const DataDirSources& sources) {
  std::vector<std::string> candidates;
  auto add = [&candidates](const fs::path& path) {
    const std::string normal = path.lexically_normal().string();
    if (std::find(candidates.begin(), candidates.end(), normal) == candidates.end()) {
      candidates.push_back(normal);
    }
  };
  if (!sources.executable.empty()) {
    const fs::path dir = fs::path(sources.executable).parent_path();
    add(dir / ".." / ".." / "var" / "data");
    add(dir / ".." / "share" / "bnserve" / "data");
  }
  if (!sources.installed_dir.empty()) add(sources.installed_dir);
  add(fs::path(sources.working_dir) / "var" / "data");
  return candidates;
}

}  // namespace

DataDirChoice FindDataDir(const DataDirSources& sources) {
  DataDirChoice choice;
  if (!sources.flag.empty()) {
    choice.path = sources.flag;
    choice.origin = "--data-dir";
    return choice;
  }
  if (!sources.env.empty()) {
    choice.path = sources.env;
    choice.origin = "$BNSERVE_DATA_DIR";
    return choice;
  }
  choice.origin = "the search";
  choice.searched = Candidates(sources);
  choice.path = choice.searched.front();
  for (const std::string& candidate : choice.searched) {
    if (IsDirectory(candidate)) {
      choice.path = candidate;
      break;
    }
  }
  return choice;
}

DataDirSources ThisProcessDataDirSources(const std::string& flag) {
  DataDirSources sources;
  sources.flag = flag;
  const char* env = std::getenv("BNSERVE_DATA_DIR");
  if (env != nullptr) sources.env = env;
  std::error_code error;
  const fs::path executable = fs::read_symlink("/proc/self/exe", error);
  if (!error) sources.executable = executable.string();
  const fs::path working_dir = fs::current_path(error);
  sources.working_dir = error ? "." : working_dir.string();
  return sources;
}

absl::Status ExplainDataDir(const absl::Status& status, const DataDirChoice& choice) {
  if (!absl::IsNotFound(status)) return status;
  std::string where;
  if (choice.searched.empty()) {
    where = absl::StrCat("bnctl read the data directory ", choice.path, " given by ",
                         choice.origin);
  } else if (IsDirectory(choice.path)) {
    where = absl::StrCat("bnctl read the data directory ", choice.path,
                         ", the first that exists of ", absl::StrJoin(choice.searched, ", "));
  } else {
    where = absl::StrCat("bnctl looked for a data directory in ",
                         absl::StrJoin(choice.searched, ", "), " and found none");
  }
  return absl::NotFoundError(absl::StrCat(
      status.message(), "; ", where,
      ". Give --data-dir DIR or set BNSERVE_DATA_DIR to read the data sets from elsewhere."));
}

}  // namespace bnserve
