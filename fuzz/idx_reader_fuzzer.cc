// libFuzzer target: the IDX reader (core/idx_reader.h) on arbitrary bytes,
// raw or gzip (zlib reads both), as images, as labels and as a label count,
// through a file descriptor as the server reads its data files.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "core/idx_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("idx", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  lseek(fd, 0, SEEK_SET);
  (void)bnserve::ReadIdxImagesFromFd(fd, "input");
  lseek(fd, 0, SEEK_SET);
  (void)bnserve::ReadIdxLabelsFromFd(fd, "input");
  lseek(fd, 0, SEEK_SET);
  (void)bnserve::ReadIdxLabelCountFromFd(fd, "input");
  close(fd);
  return 0;
}
