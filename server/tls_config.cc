#include "server/tls_config.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot read the ", what, " ", path, ": ", std::strerror(error));
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::StatusOr<X509Ptr> FirstCertificate(const std::string& pem, const std::string& path,
                                         const char* what) {
  auto bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " ", path, " holds no PEM certificate"));
  }
  return cert;
}

}  // namespace

absl::StatusOr<std::optional<TlsConfig>> TlsConfig::Load(const std::string& cert_path,
                                                         const std::string& key_path,
                                                         const std::string& client_ca_path) {
  if (cert_path.empty() && key_path.empty() && client_ca_path.empty()) return std::nullopt;
  if (cert_path.empty() || key_path.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert and --tls_key (--tls_client_ca adds mutual TLS)");
  }
  TlsConfig config;
  ASSIGN_OR_RETURN(config.cert_chain_pem, ReadPemFile(cert_path, "TLS certificate"));
  ASSIGN_OR_RETURN(config.private_key_pem, ReadPemFile(key_path, "TLS key"));
  ASSIGN_OR_RETURN(X509Ptr cert,
                   FirstCertificate(config.cert_chain_pem, cert_path, "TLS certificate"));
  auto key_bio = MemoryBio(config.private_key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TLS key ", key_path, " holds no PEM private key (or one with a passphrase)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the TLS key ", key_path, " does not belong to the certificate ", cert_path));
  }
  if (!client_ca_path.empty()) {
    ASSIGN_OR_RETURN(config.client_ca_pem, ReadPemFile(client_ca_path, "TLS client CA"));
    RETURN_IF_ERROR(
        FirstCertificate(config.client_ca_pem, client_ca_path, "TLS client CA").status());
  }
  return config;
}

}  // namespace bnserve
