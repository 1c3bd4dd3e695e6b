#include "tests/testing/malloc_counter.h"

#include <atomic>
#include <cstddef>

namespace {
std::atomic<long> g_malloc_calls{0};
}  // namespace

extern "C" void* __libc_malloc(size_t size);
extern "C" void* malloc(size_t size) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}

namespace bnserve {
namespace testing {

long MallocCalls() { return g_malloc_calls.load(std::memory_order_relaxed); }

}  // namespace testing
}  // namespace bnserve
