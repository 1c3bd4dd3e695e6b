// libbnserve_civetweb_ssl.so, soname "libssl.so": the libssl that Debian
// 12's civetweb 1.15 loads at run time. civetweb dlopen()s "libssl.so" and
// looks up OpenSSL 1.1's names in it; OpenSSL 3 renamed one of them
// (SSL_get_peer_certificate is a macro for SSL_get1_peer_certificate and no
// longer exported), so civetweb fails to start HTTPS ("cannot find
// SSL_get_peer_certificate"). HttpServer dlopen()s this library before
// civetweb starts TLS; glibc then answers civetweb's dlopen("libssl.so")
// with it (a loaded object matches by soname), and every other symbol is
// found in OpenSSL 3's libssl.so.3, which this library depends on.
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

extern "C" {

__attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* ssl) {
  return SSL_get1_peer_certificate(ssl);
}

}  // extern "C"
