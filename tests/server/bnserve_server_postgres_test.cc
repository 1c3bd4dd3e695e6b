// BnserveServer on a shared PostgreSQL registry (--registry postgresql://):
// it serves what another replica registered, follows another replica's alias
// moves, and reports not-ready while the database is down, serving the
// versions it has loaded all the same.
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "core/network.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "server/postgres_model_store.h"
#include "server/proto_convert.h"
#include "tests/server/grpc_test_util.h"
#include "tests/server/postgres_test_server.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::HealthCheck;
using ::bnserve::testing::PostgresTestServer;
using ::bnserve::testing::SyntheticData;

const std::string kServing("\x08\x01", 2);
const std::string kNotServing("\x08\x02", 2);

// A fresh (untrained) 12-8-3 network as a version of `name`.
v1::ModelVersion FreshVersion(const std::string& name, uint64_t seed) {
  NetworkConfig config;
  config.input_size = 12;
  config.hidden_sizes = {8};
  config.output_size = 3;
  absl::StatusOr<Network<float>> network = Network<float>::Create(config, seed);
  EXPECT_TRUE(network.ok()) << network.status();
  v1::ModelVersion version;
  version.set_model_name(name);
  version.set_job_id("job-000001");
  *version.mutable_network() = NetworkConfigToProto(config);
  TensorsToProto(network->ExportTensors(), version.mutable_tensors());
  return version;
}

// Polls `check` until it holds or `timeout` passes; whether it held.
template <typename Check>
bool Eventually(Check check, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (!check()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

TEST(BnserveServerPostgresTest, ServesAnotherReplicasVersionsAndIsNotReadyWhileTheDatabaseIsDown) {
  ASSERT_OK_AND_ASSIGN(PostgresTestServer * database, PostgresTestServer::Get());
  ASSERT_OK_AND_ASSIGN(std::string url, database->CreateDatabase());
  // "Another replica": a store of its own on the same database.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresModelStore> other,
                       PostgresModelStore::Open(url, PostgresModelStore::Options()));
  ASSERT_OK(other->AddVersion(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(other->AddVersion(FreshVersion("m", 2), nullptr).status());
  ASSERT_OK(other->SetAlias("m", "prod", 1));

  BnserveServerOptions options;
  options.listen = "127.0.0.1:0";
  options.registry_path = url;
  options.data_dir = "var/data";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BnserveServer> server, BnserveServer::Start(options));
  std::shared_ptr<grpc::Channel> channel = server->InProcessChannel();
  auto inference = v1::InferenceService::NewStub(channel);
  auto predict = [&](const std::string& alias, v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.mutable_model()->set_name("m");
    request.mutable_model()->set_alias(alias);
    *request.mutable_inputs() = SyntheticData(5, 12, 3, 1).features();
    grpc::ClientContext context;
    return inference->Predict(&context, request, response);
  };
  grpc::Status status;
  EXPECT_EQ(HealthCheck(channel, BnserveServer::kRegistryHealthServiceName, &status), kServing);
  EXPECT_TRUE(server->open_inference()->ServerReady());

  v1::PredictResponse response;
  ASSERT_TRUE(predict("prod", &response).ok());
  EXPECT_EQ(response.model_version(), 1);
  // The other replica moves the alias: served here within a second.
  ASSERT_OK(other->SetAlias("m", "prod", 2));
  const absl::Time moved = absl::Now();
  EXPECT_TRUE(Eventually(
      [&] {
        v1::PredictResponse r;
        return predict("prod", &r).ok() && r.model_version() == 2;
      },
      absl::Seconds(5)));
  const absl::Duration seen = absl::Now() - moved;
  EXPECT_LT(seen, absl::Seconds(1));
  ::testing::Test::RecordProperty("alias_move_seen_ms", absl::ToInt64Milliseconds(seen));

  // The database goes down: not ready within the probe's period, while the
  // loaded version keeps answering.
  ASSERT_OK(database->Stop());
  EXPECT_TRUE(Eventually(
      [&] {
        grpc::Status s;
        return HealthCheck(channel, BnserveServer::kRegistryHealthServiceName, &s) ==
               kNotServing;
      },
      absl::Seconds(5)));
  EXPECT_FALSE(server->open_inference()->ServerReady());
  EXPECT_EQ(HealthCheck(channel, "", &status), kServing);  // alive all the same
  v1::PredictRequest by_version;
  by_version.mutable_model()->set_name("m");
  by_version.mutable_model()->set_version(2);
  *by_version.mutable_inputs() = SyntheticData(5, 12, 3, 1).features();
  {
    grpc::ClientContext context;
    v1::PredictResponse r;
    const grpc::Status predicted = inference->Predict(&context, by_version, &r);
    EXPECT_TRUE(predicted.ok()) << predicted.error_message();
    EXPECT_EQ(r.predicted_classes_size(), 5);
  }

  ASSERT_OK(database->Start());
  EXPECT_TRUE(Eventually(
      [&] {
        grpc::Status s;
        return HealthCheck(channel, BnserveServer::kRegistryHealthServiceName, &s) == kServing;
      },
      absl::Seconds(5)));
  EXPECT_TRUE(server->open_inference()->ServerReady());
  server->Shutdown();
}

}  // namespace
}  // namespace bnserve
