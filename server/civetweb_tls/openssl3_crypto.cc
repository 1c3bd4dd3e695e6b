// libbnserve_civetweb_crypto.so, soname "libcrypto.so": civetweb also
// dlopen()s "libcrypto.so", a name only libssl-dev installs (a symbolic
// link), so a runtime image without -dev packages could not start HTTPS.
// This library only depends on OpenSSL 3's libcrypto.so.3, where civetweb
// finds every symbol it looks up (see openssl3_ssl.cc).
#include <openssl/crypto.h>

extern "C" {

// A symbol of the library's own, so that it is never empty.
__attribute__((visibility("default"))) unsigned long bnserve_civetweb_crypto_version() {
  return OpenSSL_version_num();
}

}  // extern "C"
