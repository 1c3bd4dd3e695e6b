#include "server/token_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

constexpr size_t kMaxNameBytes = 64;

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != '@') {
      return false;
    }
  }
  return true;
}

std::optional<TokenStore::Digest> ParseHexDigest(absl::string_view hex) {
  TokenStore::Digest digest;
  if (hex.size() != 2 * digest.size()) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < digest.size(); ++i) {
    const int high = nibble(hex[2 * i]);
    const int low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return digest;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot read the token file ", path, ": ", std::strerror(error));
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TokenStore::TokenStore(std::string path, std::vector<Entry> entries)
    : path_(std::move(path)),
      entries_(std::make_shared<const std::vector<Entry>>(std::move(entries))) {}

absl::StatusOr<std::unique_ptr<TokenStore>> TokenStore::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, Parse(text, path));
  return std::unique_ptr<TokenStore>(new TokenStore(path, std::move(entries)));
}

absl::StatusOr<std::vector<TokenStore::Entry>> TokenStore::Parse(absl::string_view text,
                                                                 absl::string_view source) {
  std::vector<Entry> entries;
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<std::string> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": ", what));
    };
    if (fields.size() != 3) return error("expected \"name role sha256hex\"");
    if (!ValidName(fields[0])) {
      return error("a token name is 1 to 64 of the characters A-Z a-z 0-9 . _ - @");
    }
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return error(role.status().message());
    std::optional<Digest> digest = ParseHexDigest(fields[2]);
    if (!digest.has_value()) {
      return error(
          "the third field is the token's SHA-256 as 64 hex digits "
          "(printf %s TOKEN | sha256sum), never the token itself");
    }
    if (!names.insert(std::string(fields[0])).second) {
      return error(absl::StrCat("the name ", fields[0], " appears twice"));
    }
    if (!digests.insert(std::string(digest->begin(), digest->end())).second) {
      return error("the same token digest appears twice");
    }
    entries.push_back(Entry{TokenIdentity{std::string(fields[0]), *role}, *digest});
  }
  return entries;
}

TokenStore::Digest TokenStore::Sha256(absl::string_view data) {
  Digest digest{};
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

absl::Status TokenStore::Reload() {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path_));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, Parse(text, path_));
  auto table = std::make_shared<const std::vector<Entry>>(std::move(entries));
  absl::MutexLock lock(&mu_);
  entries_ = std::move(table);
  return absl::OkStatus();
}

std::optional<TokenIdentity> TokenStore::Authenticate(absl::string_view token) const {
  std::shared_ptr<const std::vector<Entry>> entries;
  {
    absl::MutexLock lock(&mu_);
    entries = entries_;
  }
  const Digest digest = Sha256(token);
  const Entry* match = nullptr;
  // Every entry is compared, whatever matched before.
  for (const Entry& entry : *entries) {
    const bool equal = CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0;
    if (equal) match = &entry;
  }
  if (token.empty() || match == nullptr) return std::nullopt;
  return match->identity;
}

size_t TokenStore::size() const {
  absl::MutexLock lock(&mu_);
  return entries_->size();
}

}  // namespace bnserve
