#include "server/data_resolver.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/builtin_datasets.h"
#include "core/idx_reader.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

namespace fs = std::filesystem;

// True if `path` (normalized) is `base` or below it.
bool IsInside(const fs::path& path, const fs::path& base) {
  const fs::path relative = path.lexically_relative(base);
  if (relative.empty()) return false;
  const std::string first = relative.begin()->string();
  return first != "..";
}

absl::Status CheckLabels(const Dataset& data, int num_classes) {
  if (data.labels.size() == 0) return absl::OkStatus();
  const int min_label = data.labels.minCoeff();
  const int max_label = data.labels.maxCoeff();
  if (min_label < 0 || max_label >= num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels of ", data.name, " must be in [0, ", num_classes, "), found ",
        min_label < 0 ? min_label : max_label));
  }
  return absl::OkStatus();
}

absl::Status CheckBuiltinName(const std::string& name) {
  const std::vector<std::string> names = BuiltinDatasetNames();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown built-in data set \"", name,
                                                   "\"; expected one of ",
                                                   absl::StrJoin(names, ", ")));
  }
  return absl::OkStatus();
}

absl::Status CheckLimit(int limit) {
  if (limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("limit must be >= 0, got ", limit));
  }
  return absl::OkStatus();
}

}  // namespace

DataResolver::DataResolver(std::string data_dir) : data_dir_(std::move(data_dir)) {}

DataResolver::InsideFile::~InsideFile() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<DataResolver::InsideFile> DataResolver::OpenInside(const std::string& path) const {
  if (path.empty()) return absl::InvalidArgumentError("an IDX path is empty");
  std::error_code error;
  const fs::path base = fs::absolute(data_dir_, error).lexically_normal();
  if (error) {
    return absl::InternalError(absl::StrCat("cannot resolve the data directory: ",
                                            error.message()));
  }
  const fs::path requested(path);
  const fs::path full =
      (requested.is_absolute() ? requested : base / requested).lexically_normal();
  const std::string outside = absl::StrCat(
      "path \"", path, "\" is outside the data directory ", base.string(),
      "; give a path relative to it");
  if (!IsInside(full, base)) return absl::InvalidArgumentError(outside);
  const fs::path relative = full.lexically_relative(base);
  if (relative.empty() || relative == ".") {
    return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" is the data directory"));
  }
  const int directory = open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (directory < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open the data directory ", base.string(), ": ", strerror(errno)));
  }
  // O_NONBLOCK: opening a FIFO must not block; it is refused as not a
  // regular file when read.
  const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, directory, relative.c_str(), &how, sizeof(how)));
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
    // No openat2 (Linux < 5.6, or a seccomp filter): component by
    // component, following no symlink.
    int current = fcntl(directory, F_DUPFD_CLOEXEC, 0);
    fd = current;
    std::vector<fs::path> parts(relative.begin(), relative.end());
    for (size_t i = 0; i < parts.size() && current >= 0; ++i) {
      const bool last = i + 1 == parts.size();
      const int next = openat(current, parts[i].c_str(),
                              last ? flags | O_NOFOLLOW : O_PATH | O_DIRECTORY | O_NOFOLLOW |
                                                              O_CLOEXEC);
      const int saved = errno;
      close(current);
      errno = saved;
      current = next;
      fd = next;
    }
  }
  const int open_error = errno;
  close(directory);
  if (fd >= 0) return InsideFile(fd);
  switch (open_error) {
    case EXDEV:  // openat2 stopped a path leaving the directory
      return absl::InvalidArgumentError(outside);
    case ELOOP:
      return absl::InvalidArgumentError(absl::StrCat(
          "path \"", path, "\" goes through a symbolic link that cannot be followed here"));
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(absl::StrCat("no file \"", path, "\" in the data directory"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat("cannot read \"", path, "\""));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("cannot open \"", path, "\": ", strerror(open_error)));
  }
}

absl::StatusOr<Dataset> DataResolver::FromInline(const v1::InlineData& data,
                                                 int num_classes) {
  ASSIGN_OR_RETURN(ConstMatrixMapT<float> features, MapTensor(data.features()));
  RETURN_IF_ERROR(CheckFinite(features, "inline features"));
  if (data.labels_size() != features.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("inline data have ", features.rows(),
                                                   " rows but ", data.labels_size(),
                                                   " labels"));
  }
  Dataset dataset;
  dataset.name = "inline";
  dataset.num_classes = num_classes;
  dataset.features = features;
  dataset.labels = Eigen::Map<const Labels>(data.labels().data(), data.labels_size());
  RETURN_IF_ERROR(CheckLabels(dataset, num_classes));
  return dataset;
}

absl::StatusOr<DataSource> DataResolver::Prepare(const v1::DataSpec& spec,
                                                 int num_classes) const {
  DataSource source;
  switch (spec.source_case()) {
    case v1::DataSpec::kBuiltin: {
      RETURN_IF_ERROR(CheckBuiltinName(spec.builtin().name()));
      ASSIGN_OR_RETURN(Split split, SplitFromProto(spec.builtin().split()));
      const int limit = spec.builtin().limit();
      RETURN_IF_ERROR(CheckLimit(limit));
      source.spec = spec;
      source.max_rows = BuiltinSplitSize(spec.builtin().name(), split);
      if (limit > 0 && (!source.max_rows.has_value() || limit < *source.max_rows)) {
        source.max_rows = limit;
      }
      return source;
    }
    case v1::DataSpec::kIdx: {
      RETURN_IF_ERROR(OpenInside(spec.idx().images_path()).status());
      ASSIGN_OR_RETURN(InsideFile labels, OpenInside(spec.idx().labels_path()));
      RETURN_IF_ERROR(CheckLimit(spec.idx().limit()));
      source.spec = spec;
      // The label file's header gives the rows without reading the data; a
      // file that cannot be read here fails the job when it is loaded.
      absl::StatusOr<int64_t> count =
          ReadIdxLabelCountFromFd(labels.fd(), spec.idx().labels_path());
      if (count.ok()) source.max_rows = *count;
      const int limit = spec.idx().limit();
      if (limit > 0 && (!source.max_rows.has_value() || limit < *source.max_rows)) {
        source.max_rows = limit;
      }
      return source;
    }
    case v1::DataSpec::kInlineData: {
      ASSIGN_OR_RETURN(Dataset data, FromInline(spec.inline_data(), num_classes));
      source.max_rows = data.size();
      source.inline_data = std::make_shared<const Dataset>(std::move(data));
      return source;
    }
    case v1::DataSpec::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("data: set one of builtin, idx or inline_data");
}

absl::Status DataResolver::Check(const v1::DataSpec& spec, int num_classes) const {
  return Prepare(spec, num_classes).status();
}

absl::StatusOr<std::shared_ptr<const Dataset>> DataResolver::Resolve(const DataSource& source,
                                                                     int num_classes) {
  if (source.inline_data != nullptr) return source.inline_data;
  return Resolve(source.spec, num_classes);
}

absl::StatusOr<std::shared_ptr<const Dataset>> DataResolver::LoadBuiltin(
    const v1::BuiltinData& builtin) {
  RETURN_IF_ERROR(CheckBuiltinName(builtin.name()));
  ASSIGN_OR_RETURN(Split split, SplitFromProto(builtin.split()));
  const std::string key = absl::StrCat(builtin.name(), split == Split::kTrain ? "/train" : "/test");
  std::shared_ptr<CachedSplit> entry;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<CachedSplit>& slot = cache_[key];
    if (slot == nullptr) slot = std::make_shared<CachedSplit>();
    entry = slot;
  }
  absl::MutexLock lock(&entry->mu);
  if (entry->data == nullptr) {
    const absl::Time start = absl::Now();
    ASSIGN_OR_RETURN(Dataset data, LoadBuiltinDataset(data_dir_, builtin.name(), split));
    BNSERVE_LOG(INFO) << "loaded " << key << ": " << data.size() << " x "
                      << data.feature_size() << " in " << (absl::Now() - start);
    entry->data = std::make_shared<const Dataset>(std::move(data));
  }
  return entry->data;
}

absl::StatusOr<std::shared_ptr<const Dataset>> DataResolver::Resolve(const v1::DataSpec& spec,
                                                                     int num_classes) {
  std::shared_ptr<const Dataset> data;
  switch (spec.source_case()) {
    case v1::DataSpec::kBuiltin: {
      RETURN_IF_ERROR(CheckLimit(spec.builtin().limit()));
      ASSIGN_OR_RETURN(data, LoadBuiltin(spec.builtin()));
      const int limit = spec.builtin().limit();
      if (limit > 0 && limit < data->size()) {
        data = std::make_shared<const Dataset>(TakeFirst(*data, limit));
      }
      break;
    }
    case v1::DataSpec::kIdx: {
      RETURN_IF_ERROR(CheckLimit(spec.idx().limit()));
      ASSIGN_OR_RETURN(InsideFile images, OpenInside(spec.idx().images_path()));
      ASSIGN_OR_RETURN(InsideFile labels, OpenInside(spec.idx().labels_path()));
      ASSIGN_OR_RETURN(Dataset loaded,
                       ReadIdxDatasetFromFds(images.fd(), labels.fd(), spec.idx().images_path(),
                                             spec.idx().labels_path(),
                                             spec.idx().images_path(), num_classes));
      if (spec.idx().limit() > 0) loaded = TakeFirst(loaded, spec.idx().limit());
      data = std::make_shared<const Dataset>(std::move(loaded));
      break;
    }
    case v1::DataSpec::kInlineData: {
      ASSIGN_OR_RETURN(Dataset loaded, FromInline(spec.inline_data(), num_classes));
      data = std::make_shared<const Dataset>(std::move(loaded));
      break;
    }
    case v1::DataSpec::SOURCE_NOT_SET:
      return absl::InvalidArgumentError("data: set one of builtin, idx or inline_data");
  }
  RETURN_IF_ERROR(CheckLabels(*data, num_classes));
  return data;
}

}  // namespace bnserve
