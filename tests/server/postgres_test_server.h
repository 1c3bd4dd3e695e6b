// PostgresTestServer: a real PostgreSQL 15 for the tests of one process,
// started on first use in a temporary directory and stopped (and the
// directory removed) at exit.
//
//   ASSERT_OK_AND_ASSIGN(PostgresTestServer* server, PostgresTestServer::Get());
//   ASSERT_OK_AND_ASSIGN(std::string url, server->CreateDatabase());
//   ... PostgresModelStore::Open(url, {}) ...
//
// The cluster is a copy of one that initdb made once per user in the temp
// directory (superuser "bnserve", trust authentication; fsync off: nothing
// here needs to survive a crash) and run by pg_ctl on a
// free loopback TCP port, its unix socket inside the temp directory. initdb
// refuses to run as root, so under root (CI) the server's programs run as
// the `postgres` system user (runuser) and the directory is chowned to it.
// When the PostgreSQL binaries are missing Get() fails, telling to run
// scripts/setup.sh: the tests fail, they are not skipped.
//
// Thread-safety: Get() and CreateDatabase() are thread-safe; Stop() and
// Start() must not race with each other.
#ifndef BNSERVE_TESTS_SERVER_POSTGRES_TEST_SERVER_H_
#define BNSERVE_TESTS_SERVER_POSTGRES_TEST_SERVER_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace bnserve {
namespace testing {

class PostgresTestServer {
 public:
  // The process's server, started by the first call. The error (every later
  // call returns it too) says what failed, with the server's log.
  static absl::StatusOr<PostgresTestServer*> Get() {
    static absl::StatusOr<PostgresTestServer*>* const server = [] {
      auto* result = new absl::StatusOr<PostgresTestServer*>(Launch());
      if (result->ok()) std::atexit([] { (*Get())->Shutdown(); });
      return result;
    }();
    return *server;
  }

  // Creates a new empty database and returns its postgresql:// URL.
  absl::StatusOr<std::string> CreateDatabase() {
    const std::string name = absl::StrCat("test_", getpid(), "_", next_db_.fetch_add(1));
    try {
      pqxx::connection admin(Url("postgres"));
      pqxx::nontransaction create(admin);
      create.exec(absl::StrCat("CREATE DATABASE ", name));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("CREATE DATABASE ", name, ": ", e.what()));
    }
    return Url(name);
  }

  // The URL of database `db` on this server.
  std::string Url(const std::string& db) const {
    return absl::StrCat("postgresql://bnserve@127.0.0.1:", port_, "/", db);
  }

  // Stops the server (fast shutdown: sessions are disconnected).
  absl::Status Stop() { return Run(absl::StrCat(PgCtl(), " -m fast -w stop")); }

  // Starts it again, on the same port and data.
  absl::Status Start() {
    return Run(absl::StrCat(
        PgCtl(), " -w -t 60 -l ", dir_, "/server.log -o \"-c listen_addresses=127.0.0.1 -p ",
        port_, " -k ", dir_, " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        " -c max_connections=200 -c shared_buffers=16MB\" start"));
  }

 private:
  static constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";

  static absl::StatusOr<PostgresTestServer*> Launch() {
    for (const char* program : {"initdb", "pg_ctl", "postgres"}) {
      const std::string path = absl::StrCat(kBinDir, "/", program);
      if (access(path.c_str(), X_OK) != 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("PostgreSQL 15 is not installed (", path,
                         " is missing): run scripts/setup.sh"));
      }
    }
    auto* server = new PostgresTestServer();
    // Under root the postgres user must reach the directory: /tmp, not a
    // TMPDIR that may sit in root's home.
    const std::filesystem::path tmp =
        geteuid() == 0 ? std::filesystem::path("/tmp") : std::filesystem::temp_directory_path();
    std::string tmpl = (tmp / "bnserve-pg-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    server->dir_ = tmpl;
    if (geteuid() == 0) {
      const passwd* pg = getpwnam("postgres");
      if (pg == nullptr) {
        return absl::FailedPreconditionError(
            "running as root needs the postgres system user: run scripts/setup.sh");
      }
      if (chown(server->dir_.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
        return absl::InternalError(absl::StrCat("cannot chown ", server->dir_));
      }
      server->as_user_ = "runuser -u postgres -- ";
    }
    server->port_ = FreePort();
    if (server->port_ == 0) return absl::InternalError("no free loopback port");
    absl::Status status = server->MakeDataDir(tmp);
    if (status.ok()) status = server->Start();
    if (!status.ok()) return status;
    server->StartWatchdog();
    return server;
  }

  // dir_/data: a copy of a cluster that initdb made once for every test
  // process of this user (initdb takes seconds, a copy a tenth of one),
  // under an flock so that parallel test processes make it once.
  absl::Status MakeDataDir(const std::filesystem::path& tmp) {
    const std::string cache = (tmp / absl::StrCat("bnserve-pg15-template-v1-", geteuid())).string();
    const int lock = open((cache + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
      if (lock >= 0) close(lock);
      return absl::InternalError(absl::StrCat("cannot lock ", cache, ".lock"));
    }
    absl::Status status;
    if (access((cache + "/READY").c_str(), F_OK) != 0) {
      std::error_code ignored;
      std::filesystem::remove_all(cache, ignored);
      if (mkdir(cache.c_str(), 0700) != 0) {
        status = absl::InternalError(absl::StrCat("cannot create ", cache));
      } else if (!as_user_.empty()) {
        status = Run(absl::StrCat("chown postgres: ", cache));
      }
      if (status.ok()) {
        status = Run(absl::StrCat(as_user_, kBinDir, "/initdb -D ", cache,
                                  "/data -U bnserve --auth=trust -E UTF8 --no-sync "
                                  "--no-instructions"));
      }
      if (status.ok()) status = Run(absl::StrCat("touch ", cache, "/READY"));
    }
    if (status.ok()) status = Run(absl::StrCat("cp -a ", cache, "/data ", dir_, "/data"));
    close(lock);  // releases the flock
    return status;
  }

  // A loopback port nothing listens on now.
  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  std::string PgCtl() const { return absl::StrCat(as_user_, kBinDir, "/pg_ctl -D ", dir_, "/data"); }

  // Runs a shell command, its output appended to the fixture's log; the
  // error carries the log's tail.
  absl::Status Run(const std::string& command) {
    const std::string log = absl::StrCat(dir_, "/fixture.log");
    const int rc = std::system(absl::StrCat(command, " >>", log, " 2>&1").c_str());
    if (rc == 0) return absl::OkStatus();
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    std::ifstream server_log(absl::StrCat(dir_, "/server.log"));
    text << server_log.rdbuf();
    std::string tail = text.str();
    if (tail.size() > 3000) tail = tail.substr(tail.size() - 3000);
    return absl::InternalError(absl::StrCat("`", command, "` failed (", rc, "):\n", tail));
  }

  // A child that stops the server and removes the directory when this
  // process ends, however it ends (a crashed test leaves no server behind):
  // it waits for EOF on a pipe whose write end only this process holds.
  void StartWatchdog() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    const std::string script = absl::StrCat(
        "read -r _; ", PgCtl(), " -m immediate -w stop >/dev/null 2>&1; rm -rf ", dir_);
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[0], 0);
      setsid();
      execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[0]);  // the write end stays open (close-on-exec) until exit
  }

  void Shutdown() {
    std::system(absl::StrCat(PgCtl(), " -m immediate -w stop >/dev/null 2>&1").c_str());
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::string as_user_;
  int port_ = 0;
  std::atomic<int> next_db_{0};
};

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_POSTGRES_TEST_SERVER_H_
