// RegistryLock: one process per registry. An exclusive flock(2) on the file
// PATH.lock, held for the life of the object, with the holder's pid written
// into the file so that the next process can say who holds it. The kernel
// drops the lock when the process exits, however it exits (SIGKILL too), so
// a stale lock file never blocks a restart.
//
//   ASSIGN_OR_RETURN(RegistryLock lock, RegistryLock::Acquire("var/bnserve.db"));
//
// flock locks belong to an open file description: a second Acquire of the
// same path fails in the same process too. (Replicas that share one
// registry need the PostgreSQL backend, not a shared SQLite file.)
//
// Thread-safety: a RegistryLock is a value; Acquire is thread-safe.
#ifndef BNSERVE_SERVER_REGISTRY_LOCK_H_
#define BNSERVE_SERVER_REGISTRY_LOCK_H_

#include <string>

#include "absl/status/statusor.h"

namespace bnserve {

class RegistryLock {
 public:
  // Takes the lock of the registry at `registry_path` (creating PATH.lock,
  // mode 0600). FailedPrecondition "registry PATH is in use by pid N" when
  // another holder has it; Internal when the lock file cannot be opened.
  static absl::StatusOr<RegistryLock> Acquire(const std::string& registry_path);

  RegistryLock(RegistryLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RegistryLock& operator=(RegistryLock&& other) noexcept;
  RegistryLock(const RegistryLock&) = delete;
  RegistryLock& operator=(const RegistryLock&) = delete;

  // Releases the lock.
  ~RegistryLock();

 private:
  explicit RegistryLock(int fd) : fd_(fd) {}

  int fd_ = -1;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_REGISTRY_LOCK_H_
