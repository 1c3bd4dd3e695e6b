#include "tests/client/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace bnserve {
namespace testing {
namespace {

// Waits for `pid` up to `timeout`; true and *status if it exited.
bool WaitFor(pid_t pid, absl::Duration timeout, int* status) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    pid_t done = waitpid(pid, status, WNOHANG);
    if (done == pid) return true;
    if (done < 0) return false;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// This process's environment without the variables named in `unset` and
// those set in `set` ("NAME=value"), followed by `set`.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& unset,
                                          const std::vector<std::string>& set) {
  std::vector<std::string> removed = unset;
  for (const std::string& entry : set) removed.push_back(entry.substr(0, entry.find('=')));
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const std::string name = text.substr(0, text.find('='));
    if (std::find(removed.begin(), removed.end(), name) == removed.end()) env.push_back(text);
  }
  env.insert(env.end(), set.begin(), set.end());
  return env;
}

// Forks and execs argv with stdout/stderr to the given files, in
// `working_dir` (unless empty) with `env` (unless null) as its environment.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path, const std::string& working_dir = "",
            const std::vector<std::string>* env = nullptr) {
  // Everything allocated before fork(): the child of a threaded process may
  // only make async-signal-safe calls before exec.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  if (env != nullptr) {
    for (const std::string& entry : *env) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
  }
  const bool same_file = err_path == out_path;
  pid_t pid = fork();
  if (pid != 0) return pid;
  int in = open("/dev/null", O_RDONLY);
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err = same_file ? out
                                 : open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  if (!working_dir.empty() && chdir(working_dir.c_str()) != 0) _exit(126);
  if (env != nullptr) {
    execve(args[0], args.data(), envp.data());
  } else {
    execv(args[0], args.data());
  }
  _exit(127);
}

}  // namespace

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/bnserve-e2e-XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  path_ = mkdtemp(buffer.data());
}

TempDir::~TempDir() {
  std::error_code error;
  std::filesystem::remove_all(path_, error);
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    socklen_t length = sizeof(address);
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

ServerProcess::ServerProcess(Options options, pid_t pid)
    : options_(std::move(options)),
      pid_(pid),
      address_(absl::StrCat("127.0.0.1:", options_.port)) {}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    Options options, absl::Duration ready_timeout) {
  if (options.port == 0) options.port = PickFreePort();
  std::vector<std::string> argv = {options.binary,
                                   "--listen",
                                   absl::StrCat("127.0.0.1:", options.port),
                                   "--registry",
                                   options.registry,
                                   "--data_dir",
                                   options.data_dir,
                                   "--workers",
                                   absl::StrCat(options.workers),
                                   "--http_listen",
                                   options.http_listen};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  pid_t pid = Spawn(argv, options.log_path, options.log_path);
  if (pid < 0) return absl::InternalError("fork failed");
  std::unique_ptr<ServerProcess> server(new ServerProcess(options, pid));
  const absl::Time deadline = absl::Now() + ready_timeout;
  while (absl::Now() < deadline) {
    const std::string log = server->Log();
    if (absl::StrContains(log, "bnserve listening on")) {
      // bnserve logs its HTTP address before the gRPC one.
      const std::string kHttp = "bnserve HTTP listening on ";
      const size_t at = log.find(kHttp);
      if (at != std::string::npos) {
        const size_t end = log.find('\n', at);
        const std::string line = log.substr(at + kHttp.size(), end - at - kHttp.size());
        if (!absl::SimpleAtoi(line.substr(line.rfind(':') + 1), &server->http_port_)) {
          return absl::InternalError(absl::StrCat("cannot read the HTTP port in: ", line));
        }
      }
      return server;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return absl::UnavailableError(absl::StrCat("bnserve exited (status ", status,
                                                 ") before listening; log:\n", server->Log()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::UnavailableError(
      absl::StrCat("bnserve did not say it listens within ",
                   absl::FormatDuration(ready_timeout), "; log:\n", server->Log()));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

absl::StatusOr<int> ServerProcess::Stop(int signal, absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("the server is not running");
  kill(pid_, signal);
  int status = 0;
  if (!WaitFor(pid_, timeout, &status)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return status;
}

std::string ServerProcess::Log() const { return ReadFileOrEmpty(options_.log_path); }

CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  CommandOptions options;
  options.timeout = timeout;
  return RunCommand(argv, options);
}

CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options) {
  TempDir dir;
  const std::string out_path = dir.path() + "/out";
  const std::string err_path = dir.path() + "/err";
  CommandResult result;
  const std::vector<std::string> env = ChildEnvironment(options.unset_env, options.set_env);
  pid_t pid = Spawn(argv, out_path, err_path, options.working_dir, &env);
  int status = 0;
  if (!WaitFor(pid, options.timeout, &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadFileOrEmpty(out_path);
  result.err = ReadFileOrEmpty(err_path);
  return result;
}

}  // namespace testing
}  // namespace bnserve
