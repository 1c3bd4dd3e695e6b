// Three real bnserve replicas on one real PostgreSQL 15 database (issue 12
// §4): jobs submitted round-robin finish exactly once and spread over the
// replicas; every replica serves every version, and a version or alias
// written through one replica is served by the others; SIGKILL of the
// replica running a job ends that job FAILED ("worker lost") through
// another replica's reaper while the others carry on; nothing registered
// before the kill changes by a bit.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "client/client_connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/server_process.h"
#include "tests/client/train_requests.h"
#include "tests/server/postgres_test_server.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::PostgresTestServer;
using ::bnserve::testing::ServerProcess;
using ::bnserve::testing::SmallDigitsTrainRequest;
using ::bnserve::testing::TempDir;
using ::testing::HasSubstr;

constexpr char kDataDir[] = BNSERVE_SOURCE_DIR "/var/data";
constexpr int kReplicas = 3;
// Short, so that the kill test waits seconds: a replica renews every
// poll interval (well under a second), so 3 s is never missed by a live one.
constexpr char kLease[] = "--job_lease=3s";

class MultiReplicaTest : public ::testing::Test {
 protected:
  // One PostgreSQL for the whole test process (the fixture's singleton,
  // stopped at exit); a database of its own for each test.
  static void SetUpTestSuite() {
    absl::StatusOr<PostgresTestServer*> postgres = PostgresTestServer::Get();
    ASSERT_TRUE(postgres.ok()) << postgres.status();
    postgres_ = *postgres;
  }

  void SetUp() override {
    ASSERT_NE(postgres_, nullptr);
    absl::StatusOr<std::string> url = postgres_->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    for (int i = 0; i < kReplicas; ++i) StartReplica(i);
  }

  void StartReplica(int i) {
    ServerProcess::Options options;
    options.binary = BNSERVE_BINARY;
    options.registry = url_;
    options.data_dir = kDataDir;
    options.log_path = absl::StrCat(dir_.path(), "/replica-", i, "-", ++starts_, ".log");
    options.workers = 1;
    options.extra_args = {absl::StrCat("--replica_id=", ReplicaId(i)), kLease};
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    GlobalOptions globals = GlobalOptions::Defaults();
    globals.server = (*server)->address();
    globals.timeout = absl::Seconds(30);
    if (servers_.size() <= static_cast<size_t>(i)) {
      servers_.resize(i + 1);
      clients_.resize(i + 1);
    }
    servers_[i] = *std::move(server);
    clients_[i] = std::make_unique<ClientConnection>(globals);
  }

  static std::string ReplicaId(int i) { return absl::StrCat("replica-", i); }

  ClientConnection& Client(int i) { return *clients_[i]; }


  absl::StatusOr<v1::Job> Submit(int replica, const v1::TrainRequest& request) {
    v1::Job job;
    grpc::Status status =
        Client(replica).training().Train(Client(replica).NewContext().get(), request, &job);
    if (!status.ok()) return FromGrpcStatus(status);
    return job;
  }

  absl::StatusOr<v1::Job> GetJob(int replica, const std::string& job_id) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    grpc::Status status =
        Client(replica).training().GetJob(Client(replica).NewContext().get(), request, &job);
    if (!status.ok()) return FromGrpcStatus(status);
    return job;
  }

  static bool Finished(const v1::Job& job) {
    return job.state() == v1::SUCCEEDED || job.state() == v1::FAILED ||
           job.state() == v1::CANCELLED;
  }

  // Polls `replica` until the job is in `state` or finished.
  absl::StatusOr<v1::Job> WaitFor(int replica, const std::string& job_id, v1::JobState state,
                                  absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<v1::Job> job = GetJob(replica, job_id);
      if (!job.ok() || job->state() == state || Finished(*job)) return job;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(job_id, " still ", job->state()));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  absl::StatusOr<v1::ModelVersion> GetModel(int replica, const std::string& name, int version,
                                            bool parameters) {
    v1::GetModelRequest request;
    request.mutable_model()->set_name(name);
    request.mutable_model()->set_version(version);
    request.set_include_parameters(parameters);
    v1::ModelVersion result;
    grpc::Status status =
        Client(replica).registry().GetModel(Client(replica).NewContext().get(), request, &result);
    if (!status.ok()) return FromGrpcStatus(status);
    return result;
  }

  absl::StatusOr<v1::Model> ListedModel(int replica, const std::string& name) {
    v1::ListModelsRequest request;
    v1::ListModelsResponse response;
    grpc::Status status = Client(replica).registry().ListModels(
        Client(replica).NewContext().get(), request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    for (const v1::Model& model : response.models()) {
      if (model.name() == name) return model;
    }
    return absl::NotFoundError(name);
  }

  // Predict of two fixed rows; `alias` selects by alias when not empty.
  absl::StatusOr<v1::Tensor> Predict(int replica, const std::string& name, int version,
                                     const std::string& alias = "") {
    v1::PredictRequest request;
    request.mutable_model()->set_name(name);
    if (!alias.empty()) {
      request.mutable_model()->set_alias(alias);
    } else {
      request.mutable_model()->set_version(version);
    }
    v1::Tensor* inputs = request.mutable_inputs();
    inputs->add_shape(2);
    inputs->add_shape(784);
    for (int i = 0; i < 2 * 784; ++i) inputs->add_values(static_cast<float>((i * 37) % 256) / 255);
    request.set_bn_mode(v1::INFERENCE);
    v1::PredictResponse response;
    grpc::Status status =
        Client(replica).inference().Predict(Client(replica).NewContext().get(), request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response.probabilities();
  }

  static bool SameValues(const v1::Tensor& a, const v1::Tensor& b) {
    return a.values_size() == b.values_size() &&
           std::equal(a.values().begin(), a.values().end(), b.values().begin(),
                      [](float x, float y) { return std::memcmp(&x, &y, sizeof x) == 0; });
  }

  static PostgresTestServer* postgres_;
  TempDir dir_;
  std::string url_;
  int starts_ = 0;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
  std::vector<std::unique_ptr<ClientConnection>> clients_;
};

PostgresTestServer* MultiReplicaTest::postgres_ = nullptr;

TEST_F(MultiReplicaTest, JobsRoundRobinFinishOnceSpreadAndEveryReplicaServesEveryVersion) {
  constexpr int kJobs = 20;
  std::vector<std::string> job_ids;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::Job job, Submit(i % kReplicas, SmallDigitsTrainRequest("rr")));
    EXPECT_EQ(job.state(), v1::QUEUED);
    job_ids.push_back(job.job_id());
  }
  EXPECT_EQ(std::set<std::string>(job_ids.begin(), job_ids.end()).size(), kJobs)
      << "job ids are unique across replicas";

  std::map<std::string, int> jobs_per_replica;
  std::set<int> versions;
  for (int i = 0; i < kJobs; ++i) {
    // Asked of a replica other than the one it was submitted to.
    ASSERT_OK_AND_ASSIGN(v1::Job job,
                         WaitFor((i + 1) % kReplicas, job_ids[i], v1::SUCCEEDED,
                                 absl::Seconds(120)));
    ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.job_id() << ": " << job.reason();
    EXPECT_EQ(job.epochs_size(), 2) << "each epoch recorded once";
    EXPECT_THAT(job.replica(), ::testing::StartsWith("replica-"));
    ++jobs_per_replica[job.replica()];
    EXPECT_TRUE(versions.insert(job.model_version()).second)
        << "version " << job.model_version() << " registered twice";
  }
  EXPECT_GE(jobs_per_replica.size(), 2u) << "the jobs spread over the replicas";
  for (const auto& [replica, count] : jobs_per_replica) {
    RecordProperty(replica, count);
  }

  // Every replica lists all 20 versions, each made by exactly one of the jobs.
  for (int r = 0; r < kReplicas; ++r) {
    ASSERT_OK_AND_ASSIGN(v1::Model model, ListedModel(r, "rr"));
    EXPECT_EQ(model.versions_size(), kJobs) << "replica " << r;
  }
  std::set<std::string> registered_by;
  for (int version : versions) {
    ASSERT_OK_AND_ASSIGN(v1::ModelVersion stored, GetModel(0, "rr", version, false));
    registered_by.insert(stored.job_id());
  }
  EXPECT_EQ(registered_by, std::set<std::string>(job_ids.begin(), job_ids.end()));

  // Predict on every replica sees every version, with the same numbers.
  for (int version : versions) {
    ASSERT_OK_AND_ASSIGN(v1::Tensor first, Predict(0, "rr", version));
    for (int r = 1; r < kReplicas; ++r) {
      ASSERT_OK_AND_ASSIGN(v1::Tensor other, Predict(r, "rr", version));
      EXPECT_TRUE(SameValues(first, other)) << "version " << version << " on replica " << r;
    }
  }
}

TEST_F(MultiReplicaTest, AnAliasMovedOnOneReplicaIsServedByAnotherWithinASecond) {
  ASSERT_OK_AND_ASSIGN(v1::Job a, Submit(0, SmallDigitsTrainRequest("moving")));
  ASSERT_OK_AND_ASSIGN(v1::Job b, Submit(1, SmallDigitsTrainRequest("moving", 3)));
  ASSERT_OK_AND_ASSIGN(a, WaitFor(2, a.job_id(), v1::SUCCEEDED, absl::Seconds(60)));
  ASSERT_OK_AND_ASSIGN(b, WaitFor(2, b.job_id(), v1::SUCCEEDED, absl::Seconds(60)));
  ASSERT_EQ(a.state(), v1::SUCCEEDED);
  ASSERT_EQ(b.state(), v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(v1::Tensor of_a, Predict(2, "moving", a.model_version()));
  ASSERT_OK_AND_ASSIGN(v1::Tensor of_b, Predict(2, "moving", b.model_version()));
  ASSERT_FALSE(SameValues(of_a, of_b)) << "the two versions must be told apart";

  for (int target : {a.model_version(), b.model_version(), a.model_version()}) {
    v1::SetAliasRequest set;
    set.set_model_name("moving");
    set.set_alias("production");
    set.set_version(target);
    v1::Model model;
    grpc::Status status =
        Client(0).registry().SetAlias(Client(0).NewContext().get(), set, &model);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const absl::Time moved = absl::Now();
    const v1::Tensor& expected = target == a.model_version() ? of_a : of_b;
    // Replica 1 (which has served the alias before, so it is cached there)
    // answers with the new version within a second of the move.
    while (true) {
      absl::StatusOr<v1::Tensor> served = Predict(1, "moving", 0, "production");
      if (served.ok() && SameValues(*served, expected)) break;
      ASSERT_LT(absl::Now() - moved, absl::Seconds(1))
          << "replica 1 still serves the old target of production -> " << target;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
}

TEST_F(MultiReplicaTest, KillingTheReplicaRunningAJobFailsItAndLosesNothing) {
  // Something registered first, to check bit for bit after the kill.
  ASSERT_OK_AND_ASSIGN(v1::Job before, Submit(0, SmallDigitsTrainRequest("kept")));
  ASSERT_OK_AND_ASSIGN(before, WaitFor(1, before.job_id(), v1::SUCCEEDED, absl::Seconds(60)));
  ASSERT_EQ(before.state(), v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion kept, GetModel(1, "kept", before.model_version(), true));
  ASSERT_GT(kept.tensors_size(), 0);

  // A job that trains for minutes unless stopped.
  v1::TrainRequest long_request = SmallDigitsTrainRequest("doomed", 200);
  long_request.mutable_train_data()->mutable_builtin()->set_limit(0);
  ASSERT_OK_AND_ASSIGN(v1::Job doomed, Submit(2, long_request));
  ASSERT_OK_AND_ASSIGN(doomed, WaitFor(2, doomed.job_id(), v1::RUNNING, absl::Seconds(30)));
  ASSERT_EQ(doomed.state(), v1::RUNNING);
  int victim = -1;
  for (int r = 0; r < kReplicas; ++r) {
    if (doomed.replica() == ReplicaId(r)) victim = r;
  }
  ASSERT_GE(victim, 0) << "unknown replica '" << doomed.replica() << "'";
  ASSERT_OK_AND_ASSIGN(int status, servers_[victim]->Stop(SIGKILL));
  EXPECT_TRUE(WIFSIGNALED(status));
  const absl::Time killed = absl::Now();
  const int survivor = (victim + 1) % kReplicas;

  // Another replica's reaper ends it FAILED once the lease (3 s) expired.
  ASSERT_OK_AND_ASSIGN(v1::Job failed,
                       WaitFor(survivor, doomed.job_id(), v1::FAILED, absl::Seconds(30)));
  EXPECT_EQ(failed.state(), v1::FAILED);
  EXPECT_THAT(failed.reason(), HasSubstr("worker lost"));
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));
  EXPECT_EQ(failed.model_version(), 0);

  // The others carry on: a new job finishes on one of the survivors.
  ASSERT_OK_AND_ASSIGN(v1::Job after, Submit(survivor, SmallDigitsTrainRequest("after")));
  ASSERT_OK_AND_ASSIGN(after, WaitFor(survivor, after.job_id(), v1::SUCCEEDED, absl::Seconds(60)));
  ASSERT_EQ(after.state(), v1::SUCCEEDED) << after.reason();
  EXPECT_NE(after.replica(), ReplicaId(victim));

  // Nothing registered before changed: the same tensors, bit for bit, from
  // every live replica.
  for (int r = 0; r < kReplicas; ++r) {
    if (r == victim) continue;
    ASSERT_OK_AND_ASSIGN(v1::ModelVersion read, GetModel(r, "kept", before.model_version(), true));
    ASSERT_EQ(read.tensors_size(), kept.tensors_size());
    for (int t = 0; t < kept.tensors_size(); ++t) {
      EXPECT_EQ(read.tensors(t).name(), kept.tensors(t).name());
      EXPECT_TRUE(SameValues(read.tensors(t).tensor(), kept.tensors(t).tensor()))
          << kept.tensors(t).name() << " on replica " << r;
    }
  }

  // The killed replica comes back and sees the job as the others do.
  StartReplica(victim);
  ASSERT_OK_AND_ASSIGN(v1::Job seen, GetJob(victim, doomed.job_id()));
  EXPECT_EQ(seen.state(), v1::FAILED);
}

}  // namespace
}  // namespace bnserve
