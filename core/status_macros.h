// The two status macros Abseil 20220623 does not ship.
//
//   RETURN_IF_ERROR(expr);          // expr is an absl::Status
//   ASSIGN_OR_RETURN(lhs, expr);    // expr is an absl::StatusOr<T>
//
// Both return the error status from the enclosing function unchanged.
#ifndef BNSERVE_CORE_STATUS_MACROS_H_
#define BNSERVE_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BNSERVE_STATUS_CONCAT_INNER_(a, b) a##b
#define BNSERVE_STATUS_CONCAT_(a, b) BNSERVE_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                  \
  do {                                                         \
    ::absl::Status bnserve_status_ = (expr);                   \
    if (!bnserve_status_.ok()) return bnserve_status_;         \
  } while (false)

#define BNSERVE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  BNSERVE_ASSIGN_OR_RETURN_IMPL_(   \
      BNSERVE_STATUS_CONCAT_(bnserve_statusor_, __LINE__), lhs, expr)

#endif  // BNSERVE_CORE_STATUS_MACROS_H_
