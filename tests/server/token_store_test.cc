#include "server/token_store.h"

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace bnserve {
namespace {

using ::bnserve::testing::HexSha256;

using ::bnserve::testing::TempPath;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

TEST(TokenStoreTest, Sha256IsSha256) {
  // printf %s test | sha256sum
  EXPECT_EQ(HexSha256("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(TokenStoreTest, AuthenticatesByDigestWithCommentsAndBlankLines) {
  const std::string path = TempPath("tokens");
  WriteFile(path, "# who role sha256\n\n  viewer-1 viewer " + HexSha256("v-secret") +
                      "  # dashboards\nci\ttrainer\t" + HexSha256("t-secret") + "\r\nroot admin " +
                      HexSha256("a-secret") + "\n");
  absl::StatusOr<std::unique_ptr<TokenStore>> tokens = TokenStore::Open(path);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ((*tokens)->size(), 3u);
  std::optional<TokenIdentity> viewer = (*tokens)->Authenticate("v-secret");
  ASSERT_TRUE(viewer.has_value());
  EXPECT_EQ(viewer->name, "viewer-1");
  EXPECT_EQ(viewer->role, Role::kViewer);
  EXPECT_EQ((*tokens)->Authenticate("t-secret")->role, Role::kTrainer);
  EXPECT_EQ((*tokens)->Authenticate("a-secret")->name, "root");
  EXPECT_FALSE((*tokens)->Authenticate("wrong").has_value());
  EXPECT_FALSE((*tokens)->Authenticate("").has_value());
  // The digest itself is not a token.
  EXPECT_FALSE((*tokens)->Authenticate(HexSha256("v-secret")).has_value());
}

TEST(TokenStoreTest, RejectsMalformedLinesNamingTheLine) {
  const std::string digest = HexSha256("x");
  struct Case {
    std::string text;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"a viewer\n", "f:1: expected \"name role sha256hex\""},
           {"# ok\na root " + digest + "\n", "f:2: unknown role \"root\""},
           {"a viewer my-plain-token\n", "f:1: the third field is the token's SHA-256"},
           {"a viewer " + digest.substr(1) + "g\n", "f:1: the third field"},
           {"a/b viewer " + digest + "\n", "f:1: a token name is"},
           {"a viewer " + digest + "\na admin " + HexSha256("y") + "\n", "f:2: the name a"},
           {"a viewer " + digest + "\nb admin " + digest + "\n", "f:2: the same token digest"},
       }) {
    absl::StatusOr<std::vector<TokenStore::Entry>> parsed = TokenStore::Parse(c.text, "f");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(parsed.status().message().find(c.message), absl::string_view::npos)
        << parsed.status() << "\nwanted: " << c.message;
  }
}

TEST(TokenStoreTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<TokenStore>> tokens = TokenStore::Open(TempPath("absent"));
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenStoreTest, ReloadSwapsTheTokensAndABadFileKeepsTheOldOnes) {
  const std::string path = TempPath("tokens");
  WriteFile(path, "old viewer " + HexSha256("old") + "\n");
  absl::StatusOr<std::unique_ptr<TokenStore>> tokens = TokenStore::Open(path);
  ASSERT_TRUE(tokens.ok()) << tokens.status();

  WriteFile(path, "new admin " + HexSha256("new") + "\n");
  ASSERT_TRUE((*tokens)->Reload().ok());
  EXPECT_FALSE((*tokens)->Authenticate("old").has_value());
  EXPECT_EQ((*tokens)->Authenticate("new")->role, Role::kAdmin);

  WriteFile(path, "broken line\n");
  absl::Status reloaded = (*tokens)->Reload();
  EXPECT_EQ(reloaded.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*tokens)->Authenticate("new")->name, "new");

  std::filesystem::remove(path);
  EXPECT_EQ((*tokens)->Reload().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*tokens)->Authenticate("new")->name, "new");
}

}  // namespace
}  // namespace bnserve
