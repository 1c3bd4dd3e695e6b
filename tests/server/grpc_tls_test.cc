// The gRPC port with TLS and mutual TLS, with certificates the test makes
// with the openssl CLI (tests/server/test_certificates.h).
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/server_test_util.h"
#include "tests/server/test_certificates.h"

namespace bnserve {
namespace {

using ::bnserve::testing::TempPath;
using ::bnserve::testing::TestCertificates;

class GrpcTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certs_.Generate(TempPath("certs"))); }

  absl::StatusOr<std::unique_ptr<BnserveServer>> Start(bool mutual) {
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.registry_path = TempPath("registry.db");
    options.data_dir = "var/data";
    options.tls_cert_file = certs_.server_cert;
    options.tls_key_file = certs_.server_key;
    if (mutual) options.tls_client_ca_file = certs_.ca_cert;
    return BnserveServer::Start(options);
  }

  // ListModels over `credentials` to the server's port, as "localhost".
  static grpc::Status ListModels(int port,
                                 const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    auto channel = grpc::CreateChannel("localhost:" + std::to_string(port), credentials);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::ListModelsRequest request;
    v1::ListModelsResponse response;
    return v1::ModelRegistry::NewStub(channel)->ListModels(&context, request, &response);
  }

  std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& ca, bool client_cert) const {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = TestCertificates::Read(ca);
    if (client_cert) {
      ssl.pem_cert_chain = TestCertificates::Read(certs_.client_cert);
      ssl.pem_private_key = TestCertificates::Read(certs_.client_key);
    }
    return grpc::SslCredentials(ssl);
  }

  TestCertificates certs_;
};

TEST_F(GrpcTlsTest, TlsClientsAreServedAndPlaintextOrUntrustingOnesAreNot) {
  absl::StatusOr<std::unique_ptr<BnserveServer>> server = Start(/*mutual=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  grpc::Status ok = ListModels(port, Tls(certs_.ca_cert, false));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(ListModels(port, grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A client that does not trust the server's issuer refuses the handshake.
  EXPECT_EQ(ListModels(port, Tls(certs_.other_ca_cert, false)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, MutualTlsNeedsAClientCertificate) {
  absl::StatusOr<std::unique_ptr<BnserveServer>> server = Start(/*mutual=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  grpc::Status ok = ListModels(port, Tls(certs_.ca_cert, true));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(ListModels(port, Tls(certs_.ca_cert, false)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListModels(port, grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, MutualTlsRefusesACertificateOfAnotherCa) {
  // The server trusts only the other CA: our client certificate does not chain to it.
  BnserveServerOptions options;
  options.listen = "127.0.0.1:0";
  options.registry_path = TempPath("registry.db");
  options.data_dir = "var/data";
  options.tls_cert_file = certs_.server_cert;
  options.tls_key_file = certs_.server_key;
  options.tls_client_ca_file = certs_.other_ca_cert;
  absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(ListModels((*server)->port(), Tls(certs_.ca_cert, true)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, BadFilesStopTheStartWithTheirName) {
  BnserveServerOptions options;
  options.listen = "127.0.0.1:0";
  options.registry_path = TempPath("registry.db");
  options.data_dir = "var/data";
  options.tls_cert_file = certs_.server_cert;
  options.tls_key_file = certs_.dir + "/nope.key";
  absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(server.status().message().find("nope.key"), std::string::npos) << server.status();

  options.tls_key_file = certs_.server_key;
  options.auth_tokens_file = certs_.dir + "/no-tokens";
  server = BnserveServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(server.status().message().find("no-tokens"), std::string::npos) << server.status();
}

}  // namespace
}  // namespace bnserve

namespace bnserve {
namespace {

TEST(StartWarningTest, NonLoopbackWithoutTlsAndTokensWarnsLoudly) {
  BnserveServerOptions options;
  options.listen = "0.0.0.0:0";
  options.registry_path = testing::TempPath("registry.db");
  options.data_dir = "var/data";
  ::testing::internal::CaptureStderr();
  {
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
  }
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find(" W "), std::string::npos) << log;
  EXPECT_NE(log.find("!!! bnserve listens on 0.0.0.0:0 (not loopback) WITHOUT TLS WITHOUT TOKENS"),
            std::string::npos)
      << log;

  options.listen = "127.0.0.1:0";
  ::testing::internal::CaptureStderr();
  {
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
  }
  log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.find("!!!"), std::string::npos) << log;
}

}  // namespace
}  // namespace bnserve
