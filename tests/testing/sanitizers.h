// Whether this test binary is built with AddressSanitizer (make test-asan),
// for the few tests that must behave differently there: one that cannot work
// under ASan says why and skips, and one that waits for real work (training)
// multiplies its deadline by kSanitizerSlowdown, since ASan+UBSan run
// compute-bound code several times slower, instead of a looser deadline in
// the normal build. Header-only constants; thread-safe.
#ifndef BNSERVE_TESTS_TESTING_SANITIZERS_H_
#define BNSERVE_TESTS_TESTING_SANITIZERS_H_

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BNSERVE_TESTING_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(BNSERVE_TESTING_ASAN)
#define BNSERVE_TESTING_ASAN 1
#endif

namespace bnserve {
namespace testing {

#ifdef BNSERVE_TESTING_ASAN
inline constexpr bool kUnderAddressSanitizer = true;
// The default model's training did not finish in 60 s under ASan+UBSan on
// a loaded 2-core machine.
inline constexpr int kSanitizerSlowdown = 5;
#else
inline constexpr bool kUnderAddressSanitizer = false;
inline constexpr int kSanitizerSlowdown = 1;
#endif

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_TESTING_SANITIZERS_H_
