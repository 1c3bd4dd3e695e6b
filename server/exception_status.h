// StatusFromExceptions: runs work that returns an absl::Status and turns an
// exception escaping it into a status, for the places where bnserve runs
// work on threads of its own (Evaluate and Inspect off the gRPC thread, the
// training workers), where an uncaught exception would end the process.
// std::bad_alloc (a forward pass or a data set larger than the memory left)
// becomes ResourceExhausted, any other std::exception Internal, each naming
// `what` and saying the server goes on serving.
//
//   absl::Status status = StatusFromExceptions("Evaluate", [&] { return DoEvaluate(...); });
//
// Handlers on gRPC's own threads need no wrapper: gRPC catches there, and
// ParseFailureInterceptorFactory turns its answer into Internal.
//
// Thread-safety: a free function; thread-safe when `work` is.
#ifndef BNSERVE_SERVER_EXCEPTION_STATUS_H_
#define BNSERVE_SERVER_EXCEPTION_STATUS_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bnserve {

absl::Status StatusFromExceptions(absl::string_view what,
                                  const std::function<absl::Status()>& work);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_EXCEPTION_STATUS_H_
