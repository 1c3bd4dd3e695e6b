#include "core/logging.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace bnserve {
namespace {

std::atomic<int> g_min_severity{static_cast<int>(LogSeverity::INFO)};

absl::Mutex& OutputMutex() {
  static absl::Mutex* mutex = new absl::Mutex();
  return *mutex;
}

const char* SeverityName(LogSeverity severity) {
  switch (severity) {
    case LogSeverity::INFO:
      return "I";
    case LogSeverity::WARNING:
      return "W";
    case LogSeverity::ERROR:
      return "E";
  }
  return "?";
}

const char* Basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash == nullptr ? path : slash + 1;
}

}  // namespace

void SetMinLogSeverity(LogSeverity severity) {
  g_min_severity.store(static_cast<int>(severity));
}

LogSeverity MinLogSeverity() {
  return static_cast<LogSeverity>(g_min_severity.load());
}

namespace internal_logging {

LogMessage::LogMessage(LogSeverity severity, const char* file, int line)
    : severity_(severity), file_(file), line_(line) {}

LogMessage::~LogMessage() {
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string text = stream_.str();
  absl::MutexLock lock(&OutputMutex());
  std::fprintf(stderr, "%s %s %s:%d] %s\n", time.c_str(), SeverityName(severity_),
               Basename(file_), line_, text.c_str());
  std::fflush(stderr);
}

}  // namespace internal_logging
}  // namespace bnserve
