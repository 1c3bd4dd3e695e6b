#include "server/registry_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace bnserve {

absl::StatusOr<RegistryLock> RegistryLock::Acquire(const std::string& registry_path) {
  const std::string lock_path = registry_path + ".lock";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open lock file ", lock_path, ": ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char buffer[32] = {};
    const ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
    close(fd);
    if (error != EWOULDBLOCK) {
      return absl::InternalError(
          absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(error)));
    }
    int pid = 0;
    const bool known =
        n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(std::string(buffer, n)), &pid);
    return absl::FailedPreconditionError(absl::StrCat(
        "registry ", registry_path, " is in use by ", known ? absl::StrCat("pid ", pid) :
        "another process", " (one server per SQLite registry)"));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock holds all the same; only the message of a second process suffers.
  }
  return RegistryLock(fd);
}

RegistryLock& RegistryLock::operator=(RegistryLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RegistryLock::~RegistryLock() {
  if (fd_ >= 0) close(fd_);  // closing the description releases the flock
}

}  // namespace bnserve
