// DataResolver: turns a request's DataSpec into a core Dataset.
//
//   DataResolver resolver("var/data");
//   ASSIGN_OR_RETURN(std::shared_ptr<const Dataset> data,
//                    resolver.Resolve(spec, /*num_classes=*/10));
//
// Sources:
//   builtin      a built-in data set by name, split and limit from the data
//                directory; each whole split is loaded once and cached (the
//                fashion-mnist train split is 60,000 x 784 floats).
//   idx          an IDX image/label pair; relative paths are resolved inside
//                the data directory, and a path that leaves it (lexically, by
//                `..` or an absolute path, or through a symlink) is rejected
//                with InvalidArgument. Each file is opened once, by the
//                kernel's openat2(RESOLVE_BENEATH) relative to the opened
//                directory, and read from that descriptor: no name is looked
//                up twice, so a symlink swapped in between cannot lead out.
//                Relative symlinks that stay inside are followed (absolute
//                ones are refused, even to a file inside); where openat2 is
//                missing, each component is opened with O_NOFOLLOW (no
//                symlink at all). What the directory promises: no path
//                leaves its tree. A hard link in it is the file itself, as
//                whoever can make one could copy the file there: the
//                directory's contents are its owner's to choose.
//   inline_data  features of shape [rows, features] with rows * features
//                finite values and one label per row.
// Every label must be in [0, num_classes).
//
// A training job checks its specs once at Submit (Prepare: no data are loaded,
// only an IDX label file's 8-byte header is read; inline data are parsed then
// and kept as a Dataset) and loads them on its worker (Resolve of the DataSource).
//
// Thread-safety: thread-safe. Concurrent requests for the same uncached split
// load it once; the others wait for it.
#ifndef BNSERVE_SERVER_DATA_RESOLVER_H_
#define BNSERVE_SERVER_DATA_RESOLVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bnserve/v1/types.pb.h"
#include "core/dataset.h"

namespace bnserve {

// A DataSpec checked without loading its data (DataResolver::Prepare): what
// a job will load, and what is known of its size already.
struct DataSource {
  // builtin or idx: what Resolve loads. Unset for inline data.
  v1::DataSpec spec;
  // Inline data, parsed and checked once.
  std::shared_ptr<const Dataset> inline_data;
  // An upper bound of the rows, when it is known without loading the data:
  // the inline rows; a built-in split's size (BuiltinSplitSize) or an IDX
  // label file's header count, or the limit if smaller. nullopt otherwise.
  std::optional<int64_t> max_rows;
};

class DataResolver {
 public:
  explicit DataResolver(std::string data_dir);

  DataResolver(const DataResolver&) = delete;
  DataResolver& operator=(const DataResolver&) = delete;

  const std::string& data_dir() const { return data_dir_; }

  // The data set `spec` names. InvalidArgument for an empty spec, an unknown
  // built-in name, a path outside the data directory, malformed inline data
  // or a label outside [0, num_classes); NotFound for missing files.
  absl::StatusOr<std::shared_ptr<const Dataset>> Resolve(const v1::DataSpec& spec,
                                                         int num_classes);

  // Only the cheap checks of Resolve, loading no data (an IDX label file's
  // header gives its row count; an unreadable one is left to Resolve): the spec is
  // set, a built-in name is known, IDX paths stay inside the data directory,
  // inline data are well formed. Used to reject a bad request at once.
  // Returns the checked source (errors as Check).
  absl::StatusOr<DataSource> Prepare(const v1::DataSpec& spec, int num_classes) const;

  // Prepare(spec, num_classes).status().
  absl::Status Check(const v1::DataSpec& spec, int num_classes) const;

  // The data set of a prepared source: its inline data, or what Resolve
  // loads for its spec (errors as Resolve).
  absl::StatusOr<std::shared_ptr<const Dataset>> Resolve(const DataSource& source,
                                                         int num_classes);

  // A file opened inside the data directory, closed with the object.
  class InsideFile {
   public:
    explicit InsideFile(int fd) : fd_(fd) {}
    InsideFile(InsideFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    InsideFile& operator=(InsideFile&&) = delete;
    ~InsideFile();
    int fd() const { return fd_; }

   private:
    int fd_;
  };

  // Opens `path` (relative to the data directory, or absolute inside it)
  // for reading, as described above. InvalidArgument if it is empty or
  // leaves the directory, lexically or through a symlink; NotFound if there
  // is no such file; PermissionDenied if it cannot be read.
  absl::StatusOr<InsideFile> OpenInside(const std::string& path) const;

  // Inline data as a Dataset (checks as in Resolve).
  static absl::StatusOr<Dataset> FromInline(const v1::InlineData& data, int num_classes);

 private:
  struct CachedSplit {
    absl::Mutex mu;
    std::shared_ptr<const Dataset> data ABSL_GUARDED_BY(mu);
  };

  absl::StatusOr<std::shared_ptr<const Dataset>> LoadBuiltin(const v1::BuiltinData& builtin);

  const std::string data_dir_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<CachedSplit>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_DATA_RESOLVER_H_
