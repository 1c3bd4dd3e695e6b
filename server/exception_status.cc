#include "server/exception_status.h"

#include <exception>
#include <new>

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace bnserve {

absl::Status StatusFromExceptions(absl::string_view what,
                                  const std::function<absl::Status()>& work) {
  try {
    return work();
  } catch (const std::bad_alloc&) {
    BNSERVE_LOG(ERROR) << what << ": out of memory (std::bad_alloc); answered ResourceExhausted";
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " ran out of memory on the server; it keeps serving: retry with less data"));
  } catch (const std::exception& e) {
    BNSERVE_LOG(ERROR) << what << " threw: " << e.what();
    return absl::InternalError(
        absl::StrCat(what, " failed on the server (", e.what(), "); it keeps serving"));
  }
}

}  // namespace bnserve
