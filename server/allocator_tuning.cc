#include "server/allocator_tuning.h"

#include <malloc.h>

#include "core/logging.h"

namespace bnserve {

bool KeepFreedMemoryForReuse() {
#if defined(__GLIBC__)
  // 32 MiB is glibc's largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on
  // 64-bit); setting it also turns off the dynamic adjustment. Allocations
  // above it (a request near --max_message_mb) still get their own mmap.
  constexpr int kMmapThreshold = 32 << 20;
  // Keep up to 512 MiB of free heap top before giving it back.
  constexpr int kTrimThreshold = 512 << 20;
  // Grow a heap 16 MiB beyond what an allocation needs (glibc's default is
  // 128 KiB): without it, measured, a batch-256 Predict still faults in
  // about 20 pages per call as the heaps creep up.
  constexpr int kTopPad = 16 << 20;
  struct Option {
    int param;
    int value;
    const char* name;
  };
  bool all = true;
  for (const Option& option : {Option{M_MMAP_THRESHOLD, kMmapThreshold, "M_MMAP_THRESHOLD"},
                               Option{M_TRIM_THRESHOLD, kTrimThreshold, "M_TRIM_THRESHOLD"},
                               Option{M_TOP_PAD, kTopPad, "M_TOP_PAD"}}) {
    if (mallopt(option.param, option.value) != 1) {
      BNSERVE_LOG(WARNING) << "mallopt refused " << option.name << " = " << option.value
                           << "; it keeps its default";
      all = false;
    }
  }
  return all;
#else
  return false;
#endif
}

}  // namespace bnserve
