#include "core/idx_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
// Payloads are read in chunks of this size, so a corrupt header that claims
// billions of samples costs no more memory than the data actually present.
constexpr size_t kReadChunk = size_t{1} << 20;
// Larger than any IDX file bnserve has a use for (fashion-mnist train: 47 MB),
// small enough that the float matrix of a valid file always fits in memory.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 32;

// A failed system call on a file we read: NotFound if it does not exist, else
// InvalidArgument (idx_reader.h: every other reader error is InvalidArgument).
absl::Status ReadErrnoError(const std::string& what, int error_number) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(error_number));
  if (error_number == ENOENT || error_number == ENOTDIR) return absl::NotFoundError(message);
  return absl::InvalidArgumentError(message);
}

// A failed system call on a file we write, with the most specific code.
absl::Status WriteErrnoError(const std::string& what, int error_number) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(error_number));
  switch (error_number) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};

// Sequential reader of one file through zlib, which reads gzip or raw data
// transparently.
class IdxFile {
 public:
  // Reads from `fd` (not closed; from its current offset); `name` names the
  // file in messages.
  static absl::StatusOr<IdxFile> FromFd(int fd, const std::string& name) {
    struct stat st;
    if (fstat(fd, &st) != 0) return ReadErrnoError(name, errno);
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not a regular file"));
    }
    // zlib closes what it reads: give it a duplicate.
    const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return ReadErrnoError(absl::StrCat(name, ": cannot open"), errno);
    // A file opened O_NONBLOCK (so that opening a FIFO would not block)
    // reads as usual: the flag has no effect on regular files.
    errno = 0;
    gzFile file = gzdopen(copy, "rb");
    if (file == nullptr) {
      const int error = errno != 0 ? errno : ENOMEM;
      close(copy);
      return ReadErrnoError(absl::StrCat(name, ": cannot open"), error);
    }
    return IdxFile(name, static_cast<uint64_t>(st.st_size), file);
  }

  const std::string& path() const { return path_; }

  // Reads exactly `size` bytes, or fails saying what `what` was and how much
  // of it the file held.
  absl::Status ReadExactly(void* out, size_t size, const char* what) {
    size_t done = 0;
    while (done < size) {
      const unsigned chunk = static_cast<unsigned>(std::min(size - done, kReadChunk));
      const int n = gzread(file_.get(), static_cast<char*>(out) + done, chunk);
      if (n < 0) return CorruptError();
      if (n == 0) {
        RETURN_IF_ERROR(StreamError());
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: truncated: %s needs %u bytes, file ends after %u", path_, what, size, done));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint32_t> ReadBigEndian32(const char* what) {
    unsigned char bytes[4];
    RETURN_IF_ERROR(ReadExactly(bytes, sizeof(bytes), what));
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
           (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
  }

  // Reads a payload of `size` bytes whose header has been consumed
  // (`header_bytes`). For raw files the size is checked against the file's
  // size before anything is allocated; gzip payloads are read in chunks.
  absl::StatusOr<std::vector<uint8_t>> ReadPayload(uint64_t size, uint64_t header_bytes,
                                                   const char* what) {
    if (size > kMaxPayloadBytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: header claims %u bytes of %s, more than the limit of %u (corrupt header?)",
          path_, size, what, kMaxPayloadBytes));
    }
    if (gzdirect(file_.get()) && header_bytes + size != file_size_) {
      if (header_bytes + size > file_size_) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: truncated: header claims %u bytes of %s, file holds %u", path_, size, what,
            file_size_ - header_bytes));
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: %u unexpected bytes after the %u bytes of %s the header claims", path_,
          file_size_ - header_bytes - size, size, what));
    }
    std::vector<uint8_t> data;
    while (data.size() < size) {
      const size_t done = data.size();
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - done, kReadChunk));
      data.resize(done + chunk);
      const int n = gzread(file_.get(), data.data() + done, static_cast<unsigned>(chunk));
      if (n < 0) return CorruptError();
      data.resize(done + static_cast<size_t>(n));
      if (n == 0) {
        RETURN_IF_ERROR(StreamError());
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: truncated: header claims %u bytes of %s, file holds %u", path_, size, what,
            data.size()));
      }
    }
    RETURN_IF_ERROR(ExpectEnd(what));
    return data;
  }

 private:
  IdxFile(std::string path, uint64_t file_size, gzFile file)
      : path_(std::move(path)), file_size_(file_size), file_(file) {}

  // zlib's message for the last error, without the "<path>: " zlib puts first.
  absl::string_view ZlibMessage(int* code) {
    const char* message = gzerror(file_.get(), code);
    absl::string_view text = message != nullptr ? message : "";
    absl::ConsumePrefix(&text, absl::StrCat(path_, ": "));
    return text;
  }

  absl::Status CorruptError() {
    int code = Z_OK;
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": corrupt gzip data: ", ZlibMessage(&code)));
  }

  // zlib reports a gzip stream cut short as Z_BUF_ERROR at end of input.
  absl::Status StreamError() {
    int code = Z_OK;
    const absl::string_view message = ZlibMessage(&code);
    if (code == Z_OK) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": truncated or corrupt gzip data: ", message));
  }

  absl::Status ExpectEnd(const char* what) {
    unsigned char extra[64];
    const int n = gzread(file_.get(), extra, sizeof(extra));
    if (n < 0) return CorruptError();
    if (n > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ": unexpected data after the ", what, " the header claims"));
    }
    return StreamError();
  }

  std::string path_;
  uint64_t file_size_;
  std::unique_ptr<gzFile_s, GzCloser> file_;
};

// Appends `value` as 4 big-endian bytes.
void AppendBigEndian32(uint32_t value, std::vector<uint8_t>* out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<uint8_t>(value >> shift));
  }
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// Writes an IDX header and payload to `path`, replacing it.
absl::Status WriteIdx(const std::string& path, uint32_t magic,
                      const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> header;
  AppendBigEndian32(magic, &header);
  for (uint32_t dim : dims) AppendBigEndian32(dim, &header);
  std::unique_ptr<std::FILE, FileCloser> out(std::fopen(path.c_str(), "wb"));
  if (out == nullptr) return WriteErrnoError(absl::StrCat(path, ": cannot create"), errno);
  if (std::fwrite(header.data(), 1, header.size(), out.get()) != header.size() ||
      (!payload.empty() &&
       std::fwrite(payload.data(), 1, payload.size(), out.get()) != payload.size())) {
    return WriteErrnoError(absl::StrCat(path, ": write failed"), errno);
  }
  if (std::fclose(out.release()) != 0) {
    return WriteErrnoError(absl::StrCat(path, ": write failed"), errno);
  }
  return absl::OkStatus();
}

// A label file's magic number and count.
absl::StatusOr<uint32_t> ReadLabelsHeader(const std::string& path, IdxFile* file) {
  ASSIGN_OR_RETURN(uint32_t magic, file->ReadBigEndian32("the magic number"));
  if (magic != kLabelsMagic) {
    // The bytes read are not echoed: they may be any file's.
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not an IDX label file (its magic number is not 0x%08x: unsigned bytes, 1 "
        "dimension)",
        path, kLabelsMagic));
  }
  return file->ReadBigEndian32("the label count");
}

// Opens `path` for reading: an fd the caller closes.
absl::StatusOr<int> OpenForReading(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return ReadErrnoError(path, errno);
  return fd;
}

// f(fd) on `path` opened for reading.
template <typename F>
auto WithOpenFile(const std::string& path, F f) -> decltype(f(0)) {
  ASSIGN_OR_RETURN(const int fd, OpenForReading(path));
  auto result = f(fd);
  close(fd);
  return result;
}

}  // namespace

absl::StatusOr<Matrix> ReadIdxImages(const std::string& path) {
  return WithOpenFile(path, [&](int fd) { return ReadIdxImagesFromFd(fd, path); });
}

absl::StatusOr<Labels> ReadIdxLabels(const std::string& path) {
  return WithOpenFile(path, [&](int fd) { return ReadIdxLabelsFromFd(fd, path); });
}

absl::StatusOr<int64_t> ReadIdxLabelCount(const std::string& path) {
  return WithOpenFile(path, [&](int fd) { return ReadIdxLabelCountFromFd(fd, path); });
}

absl::StatusOr<Dataset> ReadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path,
                                       const std::string& name, int num_classes) {
  ASSIGN_OR_RETURN(const int images_fd, OpenForReading(images_path));
  absl::StatusOr<int> labels_fd = OpenForReading(labels_path);
  if (!labels_fd.ok()) {
    close(images_fd);
    return labels_fd.status();
  }
  absl::StatusOr<Dataset> data =
      ReadIdxDatasetFromFds(images_fd, labels_fd.value(), images_path, labels_path, name,
                            num_classes);
  close(images_fd);
  close(labels_fd.value());
  return data;
}

absl::StatusOr<Matrix> ReadIdxImagesFromFd(int fd, const std::string& path) {
  ASSIGN_OR_RETURN(IdxFile file, IdxFile::FromFd(fd, path));
  ASSIGN_OR_RETURN(uint32_t magic, file.ReadBigEndian32("the magic number"));
  if (magic != kImagesMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not an IDX image file (its magic number is not 0x%08x: unsigned bytes, 3 "
        "dimensions)",
        path, kImagesMagic));
  }
  ASSIGN_OR_RETURN(uint32_t count, file.ReadBigEndian32("the image count"));
  ASSIGN_OR_RETURN(uint32_t rows, file.ReadBigEndian32("the row count"));
  ASSIGN_OR_RETURN(uint32_t cols, file.ReadBigEndian32("the column count"));
  constexpr uint32_t kMaxInt = std::numeric_limits<int>::max();
  if (count == 0 || rows == 0 || cols == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: empty image set: header dimensions %u x %u x %u", path, count, rows, cols));
  }
  if (count > kMaxInt || uint64_t{rows} * cols > kMaxInt) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: absurd header dimensions %u x %u x %u", path, count, rows, cols));
  }
  const uint64_t pixels = uint64_t{rows} * cols;
  ASSIGN_OR_RETURN(std::vector<uint8_t> data,
                   file.ReadPayload(uint64_t{count} * pixels, 16, "pixel data"));
  using ByteMatrix = Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  // As the book's load_mnist: float32, then / 255.
  Matrix images = Eigen::Map<const ByteMatrix>(data.data(), static_cast<Eigen::Index>(count),
                                               static_cast<Eigen::Index>(pixels))
                      .cast<float>() /
                  255.0f;
  return images;
}

absl::StatusOr<Labels> ReadIdxLabelsFromFd(int fd, const std::string& path) {
  ASSIGN_OR_RETURN(IdxFile file, IdxFile::FromFd(fd, path));
  ASSIGN_OR_RETURN(uint32_t count, ReadLabelsHeader(path, &file));
  if (count == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no labels"));
  if (count > static_cast<uint32_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: absurd label count %u", path, count));
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> data, file.ReadPayload(count, 8, "labels"));
  Labels labels(static_cast<Eigen::Index>(count));
  for (uint32_t i = 0; i < count; ++i) labels(i) = data[i];
  return labels;
}

absl::StatusOr<int64_t> ReadIdxLabelCountFromFd(int fd, const std::string& path) {
  ASSIGN_OR_RETURN(IdxFile file, IdxFile::FromFd(fd, path));
  ASSIGN_OR_RETURN(uint32_t count, ReadLabelsHeader(path, &file));
  return static_cast<int64_t>(count);
}

absl::StatusOr<Dataset> ReadIdxDatasetFromFds(int images_fd, int labels_fd,
                                              const std::string& images_path,
                                              const std::string& labels_path,
                                              const std::string& name, int num_classes) {
  if (num_classes < 1 || num_classes > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": num_classes must be in [1, 256], got ", num_classes));
  }
  Dataset data;
  ASSIGN_OR_RETURN(data.features, ReadIdxImagesFromFd(images_fd, images_path));
  ASSIGN_OR_RETURN(data.labels, ReadIdxLabelsFromFd(labels_fd, labels_path));
  if (data.features.rows() != data.labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": ", images_path, " holds ", data.features.rows(), " images but ",
        labels_path, " holds ", data.labels.size(), " labels"));
  }
  for (Eigen::Index i = 0; i < data.labels.size(); ++i) {
    if (data.labels(i) >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          labels_path, ": label ", data.labels(i), " at index ", i,
          " is out of range for ", num_classes, " classes"));
    }
  }
  data.num_classes = num_classes;
  data.name = name;
  return data;
}

absl::Status WriteIdxImages(const std::string& path, const Matrix& images, int rows,
                            int cols) {
  if (rows <= 0 || cols <= 0 || images.cols() != Eigen::Index{rows} * cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": images have ", images.cols(), " features, not ", rows, " x ", cols));
  }
  if (!images.allFinite()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": images hold non-finite values"));
  }
  std::vector<uint8_t> payload(static_cast<size_t>(images.size()));
  for (Eigen::Index i = 0; i < images.rows(); ++i) {
    for (Eigen::Index j = 0; j < images.cols(); ++j) {
      const float scaled = std::round(images(i, j) * 255.0f);
      payload[static_cast<size_t>(i * images.cols() + j)] =
          static_cast<uint8_t>(std::clamp(scaled, 0.0f, 255.0f));
    }
  }
  return WriteIdx(path, kImagesMagic,
                  {static_cast<uint32_t>(images.rows()), static_cast<uint32_t>(rows),
                   static_cast<uint32_t>(cols)},
                  payload);
}

absl::Status WriteIdxLabels(const std::string& path, const Labels& labels) {
  std::vector<uint8_t> payload(static_cast<size_t>(labels.size()));
  for (Eigen::Index i = 0; i < labels.size(); ++i) {
    if (labels(i) < 0 || labels(i) > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": label ", labels(i), " at index ", i, " does not fit in a byte"));
    }
    payload[static_cast<size_t>(i)] = static_cast<uint8_t>(labels(i));
  }
  return WriteIdx(path, kLabelsMagic, {static_cast<uint32_t>(labels.size())}, payload);
}

}  // namespace bnserve
