// MallocCalls(): how many times this process has called malloc, for tests
// that assert a code path does not allocate. Linking bnserve_malloc_counter
// interposes malloc in the test binary (forwarding to glibc's
// __libc_malloc); Eigen's aligned allocations and operator new both go
// through it. Under AddressSanitizer, whose start-up a malloc replacement
// crashes, it counts through ASan's allocation hook instead (every malloc,
// calloc, realloc and new). Thread-safe (a relaxed atomic counter).
#ifndef BNSERVE_TESTS_TESTING_MALLOC_COUNTER_H_
#define BNSERVE_TESTS_TESTING_MALLOC_COUNTER_H_

namespace bnserve {
namespace testing {

long MallocCalls();

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_TESTING_MALLOC_COUNTER_H_
