// Reads MNIST-format IDX files (http://yann.lecun.com/exdb/mnist/ format),
// gzip-compressed or raw (detected from the content, not the name).
//
// Images: magic 0x00000803, count, rows, cols, then unsigned bytes scaled to
// [0, 1] by / 255. Labels: magic 0x00000801, count, then unsigned bytes.
// Every error is InvalidArgument (NotFound for a missing file) and names the
// file and what is wrong: bad magic, truncated data, counts that disagree,
// labels >= num_classes. Thread-safe (no shared state).
#ifndef BNSERVE_CORE_IDX_READER_H_
#define BNSERVE_CORE_IDX_READER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"

namespace bnserve {

absl::StatusOr<Matrix> ReadIdxImages(const std::string& path);
absl::StatusOr<Labels> ReadIdxLabels(const std::string& path);

// The count in a label file's header, reading nothing past it (cheap even
// for a large gzip file). Errors as ReadIdxLabels for the header.
absl::StatusOr<int64_t> ReadIdxLabelCount(const std::string& path);

// Both files; their counts must agree. `name` becomes Dataset::name.
absl::StatusOr<Dataset> ReadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path,
                                       const std::string& name, int num_classes = 10);

// The same from open file descriptors, read from their current offsets and
// not closed; `path` (or `*_path`) names the file in messages. The server
// reads its data files this way, each opened once inside the data directory
// (server/data_resolver.h), so that no path is looked up twice. Error
// messages never quote a file's bytes unless its magic number made it an IDX
// file (then its header dimensions are part of the message).
absl::StatusOr<Matrix> ReadIdxImagesFromFd(int fd, const std::string& path);
absl::StatusOr<Labels> ReadIdxLabelsFromFd(int fd, const std::string& path);
absl::StatusOr<int64_t> ReadIdxLabelCountFromFd(int fd, const std::string& path);
absl::StatusOr<Dataset> ReadIdxDatasetFromFds(int images_fd, int labels_fd,
                                              const std::string& images_path,
                                              const std::string& labels_path,
                                              const std::string& name, int num_classes = 10);

// Writes raw (uncompressed) IDX files; features are scaled by 255 and rounded.
// Used by tests and tools.
absl::Status WriteIdxImages(const std::string& path, const Matrix& images, int rows,
                            int cols);
absl::Status WriteIdxLabels(const std::string& path, const Labels& labels);

}  // namespace bnserve

#endif  // BNSERVE_CORE_IDX_READER_H_
