// The one logging helper of bnserve's library code.
//
//   BNSERVE_LOG(INFO) << "listening on " << address;
//
// Each statement writes one line to stderr: an ISO-8601 UTC timestamp, the
// severity, file:line and the message. Lines are written whole under a mutex,
// so concurrent threads never interleave within a line. Thread-safe.
// SetMinLogSeverity() drops lines below a severity (default INFO).
#ifndef BNSERVE_CORE_LOGGING_H_
#define BNSERVE_CORE_LOGGING_H_

#include <sstream>

namespace bnserve {

enum class LogSeverity { INFO = 0, WARNING = 1, ERROR = 2 };

void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

namespace internal_logging {

// Collects one log line and emits it on destruction.
class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

}  // namespace internal_logging
}  // namespace bnserve

#define BNSERVE_LOG(severity)                                          \
  if (::bnserve::LogSeverity::severity < ::bnserve::MinLogSeverity()) \
    ;                                                                  \
  else                                                                 \
    ::bnserve::internal_logging::LogMessage(                          \
        ::bnserve::LogSeverity::severity, __FILE__, __LINE__)          \
        .stream()

#endif  // BNSERVE_CORE_LOGGING_H_
