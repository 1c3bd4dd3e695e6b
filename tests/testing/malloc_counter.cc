#include "tests/testing/malloc_counter.h"

#include <atomic>
#include <cstddef>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BNSERVE_MALLOC_COUNTER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BNSERVE_MALLOC_COUNTER_ASAN 1
#endif

#ifdef BNSERVE_MALLOC_COUNTER_ASAN
#include <sanitizer/allocator_interface.h>
#endif

namespace {
std::atomic<long> g_malloc_calls{0};
}  // namespace

#ifdef BNSERVE_MALLOC_COUNTER_ASAN
// Under AddressSanitizer (make test-asan) malloc belongs to ASan: replacing
// it crashes ASan's start-up. Its allocator calls this hook instead for every
// allocation (malloc, calloc, realloc and operator new alike), so the count
// there is at least the count the replacement below gives.
namespace {
void CountAllocation(const volatile void*, size_t) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
}
void IgnoreFree(const volatile void*) {}
const int g_hooks_installed =
    __sanitizer_install_malloc_and_free_hooks(CountAllocation, IgnoreFree);
}  // namespace
#else
extern "C" void* __libc_malloc(size_t size);
extern "C" void* malloc(size_t size) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
#endif

namespace bnserve {
namespace testing {

long MallocCalls() {
#ifdef BNSERVE_MALLOC_COUNTER_ASAN
  (void)g_hooks_installed;
#endif
  return g_malloc_calls.load(std::memory_order_relaxed);
}

}  // namespace testing
}  // namespace bnserve
