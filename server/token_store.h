// TokenStore: the bearer tokens bnserve accepts, read from a file of one line
// per token: "name role sha256hex" (the token's SHA-256 as 64 hex digits,
// never the token itself), '#' comments and blank lines allowed:
//
//   # name     role     sha256 of the token (printf %s "$TOKEN" | sha256sum)
//   ci-bot     trainer  9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// Authenticate hashes the presented token (OpenSSL EVP SHA-256) and compares
// the digest with every entry in constant time (CRYPTO_memcmp, no early exit),
// so neither the match nor its position shows in the time taken.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TokenStore> tokens, TokenStore::Open(path));
//   std::optional<TokenIdentity> who = tokens->Authenticate(token);
//   tokens->Reload();  // on SIGHUP; a bad file keeps the tokens in use
//
// Thread-safety: thread-safe. Reload swaps the whole table at once: a
// concurrent Authenticate sees the old or the new table, never a mix.
#ifndef BNSERVE_SERVER_TOKEN_STORE_H_
#define BNSERVE_SERVER_TOKEN_STORE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/access_policy.h"

namespace bnserve {

// Who a token belongs to.
struct TokenIdentity {
  std::string name;
  Role role;
};

class TokenStore {
 public:
  using Digest = std::array<uint8_t, 32>;

  struct Entry {
    TokenIdentity identity;
    Digest digest;
  };

  // Reads and parses `path`. NotFound / PermissionDenied when it cannot be
  // read; InvalidArgument "PATH:LINE: ..." for a malformed line (not three
  // fields, a name with characters outside [A-Za-z0-9._@-] or longer than 64,
  // an unknown role, a digest that is not 64 hex digits), a repeated name or
  // a repeated digest.
  static absl::StatusOr<std::unique_ptr<TokenStore>> Open(const std::string& path);

  // Parses the text of a token file (`source` names it in errors).
  static absl::StatusOr<std::vector<Entry>> Parse(absl::string_view text,
                                                  absl::string_view source);

  // SHA-256 of `data`.
  static Digest Sha256(absl::string_view data);

  // Reads the file again and, when it parses, replaces the tokens with its
  // own; otherwise returns the error and keeps the tokens in use.
  absl::Status Reload();

  // The identity of `token`; nullopt when no entry has its digest.
  std::optional<TokenIdentity> Authenticate(absl::string_view token) const;

  // Number of tokens in use.
  size_t size() const;

  const std::string& path() const { return path_; }

 private:
  TokenStore(std::string path, std::vector<Entry> entries);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_TOKEN_STORE_H_
