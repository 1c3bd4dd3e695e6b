#include "server/tls_config.h"

#include <fstream>

#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_certificates.h"

namespace bnserve {
namespace {

using ::bnserve::testing::TempPath;
using ::bnserve::testing::TestCertificates;

class TlsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certs_.Generate(TempPath("certs"))); }
  TestCertificates certs_;
};

TEST_F(TlsConfigTest, NoFilesIsPlaintext) {
  absl::StatusOr<std::optional<TlsConfig>> tls = TlsConfig::Load("", "", "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_FALSE(tls->has_value());
}

TEST_F(TlsConfigTest, LoadsCertificateKeyAndClientCa) {
  absl::StatusOr<std::optional<TlsConfig>> tls =
      TlsConfig::Load(certs_.server_cert, certs_.server_key, "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  ASSERT_TRUE(tls->has_value());
  EXPECT_EQ((*tls)->cert_chain_pem, TestCertificates::Read(certs_.server_cert));
  EXPECT_EQ((*tls)->private_key_pem, TestCertificates::Read(certs_.server_key));
  EXPECT_FALSE((*tls)->mutual());

  tls = TlsConfig::Load(certs_.server_cert, certs_.server_key, certs_.ca_cert);
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE((*tls)->mutual());
  EXPECT_EQ((*tls)->client_ca_pem, TestCertificates::Read(certs_.ca_cert));
}

TEST_F(TlsConfigTest, RefusesHalfAConfiguration) {
  for (const auto& [cert, key, ca] :
       {std::tuple<std::string, std::string, std::string>{certs_.server_cert, "", ""},
        {"", certs_.server_key, ""},
        {"", "", certs_.ca_cert}}) {
    absl::StatusOr<std::optional<TlsConfig>> tls = TlsConfig::Load(cert, key, ca);
    EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(tls.status().message().find("--tls_cert and --tls_key"), std::string::npos)
        << tls.status();
  }
}

TEST_F(TlsConfigTest, NamesAMissingOrMalformedFile) {
  const std::string missing = certs_.dir + "/missing.pem";
  absl::StatusOr<std::optional<TlsConfig>> tls =
      TlsConfig::Load(missing, certs_.server_key, "");
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(tls.status().message().find(missing), std::string::npos) << tls.status();

  const std::string garbage = certs_.dir + "/garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  tls = TlsConfig::Load(garbage, certs_.server_key, "");
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tls.status().message().find("holds no PEM certificate"), std::string::npos);

  tls = TlsConfig::Load(certs_.server_cert, garbage, "");
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tls.status().message().find("holds no PEM private key"), std::string::npos);

  tls = TlsConfig::Load(certs_.server_cert, certs_.server_key, garbage);
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tls.status().message().find("TLS client CA"), std::string::npos) << tls.status();
}

TEST_F(TlsConfigTest, RefusesAKeyOfAnotherCertificate) {
  absl::StatusOr<std::optional<TlsConfig>> tls =
      TlsConfig::Load(certs_.server_cert, certs_.client_key, "");
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tls.status().message().find("does not belong to the certificate"), std::string::npos)
      << tls.status();
}

}  // namespace
}  // namespace bnserve
