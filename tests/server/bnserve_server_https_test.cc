// The HTTP port with --tls_cert/--tls_key (HTTPS) and --tls_client_ca
// (mutual TLS), spoken to with the curl command line, a client the project
// did not write, and certificates the test makes with the openssl CLI.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_certificates.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::TempPath;
using ::bnserve::testing::TestCertificates;
using ::testing::HasSubstr;

struct CurlResult {
  int http_status = 0;  // 0: no HTTP answer (refused handshake, ...)
  std::string body;
};

// curl `url_path` on the server's HTTP port as https://localhost:PORT (or
// http:// when `scheme` says so), with `args` (--cacert, --cert, ...).
CurlResult Curl(int port, const std::string& scheme, const std::string& path,
                const std::string& args) {
  const std::string command = absl::StrCat(
      "curl -s --max-time 10 -o - -w '\\n%{http_code}' --resolve localhost:", port,
      ":127.0.0.1 ", args, " '", scheme, "://localhost:", port, path, "' 2>/dev/null");
  CurlResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  const size_t newline = out.rfind('\n');
  if (newline == std::string::npos) return result;
  result.http_status = std::atoi(out.c_str() + newline + 1);
  result.body = out.substr(0, newline);
  return result;
}

class BnserveServerHttpsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certs_.Generate(TempPath("certs"))); }

  void Start(bool mutual) {
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.registry_path = TempPath("registry.db");
    options.data_dir = "var/data";
    options.tls_cert_file = certs_.server_cert;
    options.tls_key_file = certs_.server_key;
    if (mutual) options.tls_client_ca_file = certs_.ca_cert;
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_OK(server.status());
    server_ = *std::move(server);
  }

  TestCertificates certs_;
  std::unique_ptr<BnserveServer> server_;
};

TEST_F(BnserveServerHttpsTest, ServesHttpsWithTheServersCertificateOnly) {
  Start(/*mutual=*/false);
  const int port = server_->http_port();
  CurlResult ok = Curl(port, "https", "/v2/health/live", "--cacert " + certs_.ca_cert);
  EXPECT_EQ(ok.http_status, 200) << ok.body;
  // The Connect API is behind the same TLS.
  ok = Curl(port, "https", "/bnserve.v1.ModelRegistry/ListModels",
            "--cacert " + certs_.ca_cert + " -H 'Content-Type: application/json' -d '{}'");
  EXPECT_EQ(ok.http_status, 200) << ok.body;
  // A client that does not trust the CA, and plain HTTP, get no answer.
  EXPECT_EQ(Curl(port, "https", "/v2/health/live", "--cacert " + certs_.other_ca_cert).http_status,
            0);
  EXPECT_NE(Curl(port, "http", "/v2/health/live", "").http_status, 200);
  // TLS 1.1 and older are refused.
  EXPECT_EQ(Curl(port, "https", "/v2/health/live",
                 "--cacert " + certs_.ca_cert + " --tlsv1.1 --tls-max 1.1")
                .http_status,
            0);
}

TEST_F(BnserveServerHttpsTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  Start(/*mutual=*/true);
  const int port = server_->http_port();
  EXPECT_EQ(Curl(port, "https", "/v2/health/live", "--cacert " + certs_.ca_cert).http_status, 0);
  const CurlResult ok = Curl(port, "https", "/v2/health/live",
                             "--cacert " + certs_.ca_cert + " --cert " + certs_.client_cert +
                                 " --key " + certs_.client_key);
  EXPECT_EQ(ok.http_status, 200) << ok.body;
  // The server keeps serving after refused handshakes.
  EXPECT_EQ(Curl(port, "https", "/v2/health/live", "--cacert " + certs_.ca_cert).http_status, 0);
  EXPECT_EQ(Curl(port, "https", "/v2/health/ready",
                 "--cacert " + certs_.ca_cert + " --cert " + certs_.client_cert + " --key " +
                     certs_.client_key)
                .http_status,
            200);
}

}  // namespace
}  // namespace bnserve
