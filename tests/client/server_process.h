// Test helpers that run the real binaries: ServerProcess starts `bnserve` on a
// free loopback port (and its HTTP port on another, never bnserve's default
// 8000) with its own registry and stops it by signal;
// RunCommand runs `bnctl` (or anything) and captures its output.
//
// Not thread-safe: one test thread drives a ServerProcess.
#ifndef BNSERVE_TESTS_CLIENT_SERVER_PROCESS_H_
#define BNSERVE_TESTS_CLIENT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace bnserve {
namespace testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// when the object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback TCP port nobody listened on a moment ago (bound to port 0 and
// released).
int PickFreePort();

class ServerProcess {
 public:
  struct Options {
    std::string binary;        // path of bnserve
    std::string registry;      // the SQLite database file
    std::string data_dir;      // the data directory with the built-in sets
    std::string log_path;      // where the server's stdout and stderr go
    int workers = 2;
    int port = 0;              // 0: PickFreePort()
    // --http_listen; port 0 lets bnserve pick (http_port() reads it from
    // the log); empty: no HTTP port.
    std::string http_listen = "127.0.0.1:0";
    // More flags for bnserve (--auth_tokens=..., TLS).
    std::vector<std::string> extra_args;
  };

  // Starts the server and waits (up to `ready_timeout`) until its log says
  // "bnserve listening on". Unavailable (with the log) if it exits or stays
  // silent.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      Options options, absl::Duration ready_timeout = absl::Seconds(20));

  // Kills (SIGKILL) a server still running.
  ~ServerProcess();

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  int port() const { return options_.port; }
  // The bound HTTP port, from the log line "bnserve HTTP listening on"; 0
  // without one.
  int http_port() const { return http_port_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits up to `timeout` for the process to exit; then
  // SIGKILLs it. Returns the raw wait status (use WIFEXITED etc.).
  // FailedPrecondition if it already stopped.
  absl::StatusOr<int> Stop(int signal, absl::Duration timeout = absl::Seconds(20));

  // The server's output so far.
  std::string Log() const;

 private:
  ServerProcess(Options options, pid_t pid);
  Options options_;
  pid_t pid_;
  std::string address_;
  int http_port_ = 0;
};

struct CommandResult {
  int exit_code = -1;  // -1 if killed by a signal or timed out
  std::string out;
  std::string err;
};

// Runs argv[0] with the arguments, stdin from /dev/null, waits up to `timeout`
// (then SIGKILLs it).
CommandResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout = absl::Seconds(60));

// Where and with what environment RunCommand runs a command.
struct CommandOptions {
  std::string working_dir;                // empty: the test's own
  std::vector<std::string> unset_env;     // variables removed from the environment
  std::vector<std::string> set_env;       // "NAME=value", added or replaced
  absl::Duration timeout = absl::Seconds(60);
};
CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options);

std::string ReadFileOrEmpty(const std::string& path);

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_CLIENT_SERVER_PROCESS_H_
