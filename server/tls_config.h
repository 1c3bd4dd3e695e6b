// TlsConfig: the PEM files of the server's TLS (--tls_cert, --tls_key,
// --tls_client_ca), read and checked before the port opens, so that a
// missing, unreadable or malformed file stops the server with a message that
// names it (gRPC itself would only fail to bind). Transport-free: bnserve's
// gRPC assembly turns it into grpc::SslServerCredentials.
//
//   ASSIGN_OR_RETURN(std::optional<TlsConfig> tls,
//                    TlsConfig::Load(cert_path, key_path, client_ca_path));
//   if (tls) ... tls->cert_chain_pem, tls->private_key_pem, tls->client_ca_pem ...
//
// Thread-safety: a plain value.
#ifndef BNSERVE_SERVER_TLS_CONFIG_H_
#define BNSERVE_SERVER_TLS_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace bnserve {

struct TlsConfig {
  std::string cert_chain_pem;   // the server's certificate (and chain)
  std::string private_key_pem;  // its key
  // CA certificates client certificates must chain to; empty: clients are
  // not asked for a certificate (TLS, not mutual TLS).
  std::string client_ca_pem;

  bool mutual() const { return !client_ca_pem.empty(); }

  // nullopt when all three paths are empty (plaintext). InvalidArgument when
  // only one of cert and key is given, or a client CA without them; NotFound
  // / PermissionDenied for a file that cannot be read; InvalidArgument for a
  // file without a PEM certificate (cert, client CA) or private key (key),
  // or a key that does not belong to the certificate.
  static absl::StatusOr<std::optional<TlsConfig>> Load(const std::string& cert_path,
                                                       const std::string& key_path,
                                                       const std::string& client_ca_path);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_TLS_CONFIG_H_
