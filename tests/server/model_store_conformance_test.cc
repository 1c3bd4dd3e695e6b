// The ModelStore contract (server/model_store.h), run against every backend:
// SQLite (one file) and PostgreSQL (a real server, started by
// tests/server/postgres_test_server.h). What only one backend does is in
// sqlite_model_store_test.cc and postgres_model_store_test.cc.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_store.h"
#include "server/postgres_model_store.h"
#include "server/sqlite_model_store.h"
#include "tests/server/model_store_test_util.h"
#include "tests/server/postgres_test_server.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::ExpectBitIdenticalTensors;
using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::PostgresTestServer;
using ::bnserve::testing::RandomVersion;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Each backend opens the test's registry: the first Open creates it, later
// ones (after the previous store is gone) reopen the same one.
struct SqliteBackend {
  absl::StatusOr<std::unique_ptr<ModelStore>> Open() {
    if (path.empty()) path = TempPath("dir/sub/store.db");
    absl::StatusOr<std::unique_ptr<SqliteModelStore>> store = SqliteModelStore::Open(path);
    if (!store.ok()) return store.status();
    return std::unique_ptr<ModelStore>(std::move(store).value());
  }
  std::string path;
};

struct PostgresBackend {
  absl::StatusOr<std::unique_ptr<ModelStore>> Open() {
    if (url.empty()) {
      absl::StatusOr<PostgresTestServer*> server = PostgresTestServer::Get();
      if (!server.ok()) return server.status();
      absl::StatusOr<std::string> created = (*server)->CreateDatabase();
      if (!created.ok()) return created.status();
      url = *created;
    }
    absl::StatusOr<std::unique_ptr<PostgresModelStore>> store =
        PostgresModelStore::Open(url, PostgresModelStore::Options());
    if (!store.ok()) return store.status();
    return std::unique_ptr<ModelStore>(std::move(store).value());
  }
  std::string url;
};

template <typename Backend>
class ModelStoreConformanceTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<ModelStore>> Open() { return backend_.Open(); }

 private:
  Backend backend_;
};

class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, SqliteBackend> ? "Sqlite" : "Postgres";
  }
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(ModelStoreConformanceTest, Backends, BackendNames);

TYPED_TEST(ModelStoreConformanceTest, VersionRoundTripsBitExactlyIncludingRunningStatistics) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  const v1::ModelVersion version = RandomVersion("digits", 1);
  std::vector<std::string> names;
  for (const v1::NamedTensor& t : version.tensors()) names.push_back(t.name());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"W1", "b1", "gamma1", "beta1", "running_mean1",
                                              "running_var1", "running_mean2", "W3", "b3"}));
  ASSERT_OK_AND_ASSIGN(int number, store->AddVersion(version, nullptr));
  EXPECT_EQ(number, 1);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion read, store->GetVersion("digits", 1, true));
  EXPECT_EQ(read.version(), 1);
  EXPECT_EQ(read.job_id(), "job-000001");
  EXPECT_EQ(read.network().SerializeAsString(), version.network().SerializeAsString());
  EXPECT_TRUE(read.has_created_at());
  ExpectBitIdenticalTensors(version, read);

  ASSERT_OK_AND_ASSIGN(v1::ModelVersion metadata, store->GetVersion("digits", 1, false));
  EXPECT_EQ(metadata.tensors_size(), 0);
}

TYPED_TEST(ModelStoreConformanceTest, EverythingSurvivesReopen) {
  const v1::ModelVersion version = RandomVersion("digits", 2);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
    ASSERT_OK(store->AddVersion(version, nullptr).status());
    ASSERT_OK(store->AddVersion(version, nullptr).status());
    ASSERT_OK(store->SetAlias("digits", "production", 1));
    v1::Job job;
    job.set_job_id("job-000007");
    job.set_model_name("digits");
    job.set_state(v1::SUCCEEDED);
    job.add_epochs()->set_epoch(1);
    job.add_epochs()->set_epoch(2);
    ASSERT_OK(store->PutJob(job));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  ASSERT_OK_AND_ASSIGN(v1::Model model, store->GetModel("digits"));
  EXPECT_THAT(model.versions(), ElementsAre(1, 2));
  EXPECT_EQ(model.latest_version(), 2);
  EXPECT_THAT(model.aliases(), UnorderedElementsAre(Pair("production", 1)));
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion read, store->GetVersion("digits", 2, true));
  ExpectBitIdenticalTensors(version, read);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion first, store->GetVersion("digits", 1, false));
  EXPECT_THAT(first.aliases(), ElementsAre("production"));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> jobs, store->ListJobs());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].state(), v1::SUCCEEDED);
  ASSERT_EQ(jobs[0].epochs_size(), 2);
  EXPECT_EQ(jobs[0].epochs(1).epoch(), 2);
}

v1::Sweep TwoPointSweep(const std::string& sweep_id) {
  v1::Sweep sweep;
  sweep.set_sweep_id(sweep_id);
  sweep.mutable_request()->add_weight_init_stds(0.1);
  sweep.mutable_request()->add_weight_init_stds(0.01);
  sweep.mutable_request()->mutable_base()->set_model_name("digits");
  for (const char* job_id : {"job-000001", "job-000002"}) {
    sweep.add_points()->set_job_id(job_id);
  }
  sweep.set_created_by("alice");
  return sweep;
}

TYPED_TEST(ModelStoreConformanceTest, SweepsSurviveReopenAndAreReplacedById) {
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
    ASSERT_OK(store->PutSweep(TwoPointSweep("sweep-000002")));
    v1::Sweep first = TwoPointSweep("sweep-000001");
    ASSERT_OK(store->PutSweep(first));
    first.set_created_by("bob");
    ASSERT_OK(store->PutSweep(first));
    EXPECT_THAT(store->PutSweep(v1::Sweep()), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Sweep> sweeps, store->ListSweeps());
  ASSERT_EQ(sweeps.size(), 2u);
  EXPECT_EQ(sweeps[0].sweep_id(), "sweep-000001");
  EXPECT_EQ(sweeps[0].created_by(), "bob");
  EXPECT_EQ(sweeps[1].sweep_id(), "sweep-000002");
  ASSERT_EQ(sweeps[1].points_size(), 2);
  EXPECT_EQ(sweeps[1].points(1).job_id(), "job-000002");
  EXPECT_THAT(sweeps[1].request().weight_init_stds(), ElementsAre(0.1, 0.01));
}

TYPED_TEST(ModelStoreConformanceTest, UnfinishedJobsComeBackFailedAfterRestart) {
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
    for (auto [id, state] : {std::pair<const char*, v1::JobState>{"job-000001", v1::QUEUED},
                             {"job-000002", v1::RUNNING},
                             {"job-000003", v1::SUCCEEDED},
                             {"job-000004", v1::CANCELLED}}) {
      v1::Job job;
      job.set_job_id(id);
      job.set_state(state);
      ASSERT_OK(store->PutJob(job));
    }
    ASSERT_OK(store->AppendEpochMetrics("job-000002", [] {
      v1::EpochMetrics m;
      m.set_epoch(1);
      m.set_train_loss(0.5);
      return m;
    }()));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  ASSERT_OK_AND_ASSIGN(int marked, store->FailUnfinishedJobs("interrupted by restart"));
  EXPECT_EQ(marked, 2);
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> jobs, store->ListJobs());
  ASSERT_EQ(jobs.size(), 4u);
  EXPECT_EQ(jobs[0].state(), v1::FAILED);
  EXPECT_EQ(jobs[0].reason(), "interrupted by restart");
  EXPECT_TRUE(jobs[0].has_finished_at());
  EXPECT_EQ(jobs[1].state(), v1::FAILED);
  ASSERT_EQ(jobs[1].epochs_size(), 1);  // metrics kept
  EXPECT_DOUBLE_EQ(jobs[1].epochs(0).train_loss(), 0.5);
  EXPECT_EQ(jobs[2].state(), v1::SUCCEEDED);
  EXPECT_EQ(jobs[3].state(), v1::CANCELLED);
  EXPECT_EQ(jobs[2].reason(), "");
}

TYPED_TEST(ModelStoreConformanceTest, AliasesResolveMoveAndProtectTheirVersion) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  const v1::ModelVersion version = RandomVersion("m", 3);
  ASSERT_OK(store->AddVersion(version, nullptr).status());
  ASSERT_OK(store->AddVersion(version, nullptr).status());
  EXPECT_THAT(store->SetAlias("m", "prod", 3), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store->SetAlias("m", "prod", 1));
  EXPECT_THAT(store->ResolveAlias("m", "prod"), IsOkAndHolds(1));
  EXPECT_THAT(store->DeleteVersion("m", 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion still_there, store->GetVersion("m", 1, true));
  EXPECT_EQ(still_there.tensors_size(), version.tensors_size());
  ASSERT_OK(store->SetAlias("m", "prod", 2));  // move
  EXPECT_THAT(store->ResolveAlias("m", "prod"), IsOkAndHolds(2));
  ASSERT_OK(store->DeleteVersion("m", 1));
  ASSERT_OK(store->DeleteAlias("m", "prod"));
  EXPECT_THAT(store->DeleteAlias("m", "prod"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->ResolveAlias("m", "prod"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->ResolveAlias("other", "prod"), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST(ModelStoreConformanceTest, DeletedVersionsAreGoneAndTheirNumbersNotReused) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  const v1::ModelVersion version = RandomVersion("m", 4);
  ASSERT_OK(store->AddVersion(version, nullptr).status());
  ASSERT_OK(store->AddVersion(version, nullptr).status());
  ASSERT_OK(store->DeleteVersion("m", 2));
  EXPECT_THAT(store->DeleteVersion("m", 2), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->GetVersion("m", 2, true), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->LatestVersion("m"), IsOkAndHolds(1));
  EXPECT_THAT(store->AddVersion(version, nullptr), IsOkAndHolds(3));
  ASSERT_OK(store->DeleteVersion("m", 1));
  ASSERT_OK(store->DeleteVersion("m", 3));
  EXPECT_THAT(store->GetModel("m"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->LatestVersion("m"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Model> models, store->ListModels());
  EXPECT_TRUE(models.empty());
}

TYPED_TEST(ModelStoreConformanceTest, VersionAndFinishedJobAreStoredTogether) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  v1::Job job;
  job.set_job_id("job-000001");
  job.set_state(v1::SUCCEEDED);
  job.add_epochs()->set_epoch(1);
  ASSERT_OK_AND_ASSIGN(int number, store->AddVersion(RandomVersion("m", 5), &job));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> jobs, store->ListJobs());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].model_version(), number);
  EXPECT_EQ(jobs[0].epochs_size(), 1);

  // A bad tensor: nothing at all is stored, neither the version nor the job.
  v1::ModelVersion bad = RandomVersion("m", 6);
  bad.mutable_tensors(0)->mutable_tensor()->add_values(1.0f);
  v1::Job second;
  second.set_job_id("job-000002");
  second.set_state(v1::SUCCEEDED);
  EXPECT_THAT(store->AddVersion(bad, &second), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(jobs, store->ListJobs());
  EXPECT_EQ(jobs.size(), 1u);
  EXPECT_THAT(store->LatestVersion("m"), IsOkAndHolds(number));
  // A job without id fails inside the transaction: the version is rolled back.
  v1::Job no_id;
  EXPECT_THAT(store->AddVersion(RandomVersion("m", 7), &no_id),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store->LatestVersion("m"), IsOkAndHolds(number));
  EXPECT_THAT(store->AddVersion(RandomVersion("m", 8), nullptr), IsOkAndHolds(number + 1));
}

TYPED_TEST(ModelStoreConformanceTest, ShapesWhoseElementCountOverflowsAreRejected) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  // 2^32 x 2^32 wraps to 0 elements in 64 bits: it must not pass as an empty
  // tensor with no values.
  v1::ModelVersion wraps = RandomVersion("m", 9);
  v1::Tensor* tensor = wraps.mutable_tensors(0)->mutable_tensor();
  tensor->clear_shape();
  tensor->clear_values();
  tensor->add_shape(int64_t{1} << 32);
  tensor->add_shape(int64_t{1} << 32);
  EXPECT_THAT(store->AddVersion(wraps, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  // Three dimensions whose product overflows to a small positive count.
  v1::ModelVersion small = RandomVersion("m", 10);
  tensor = small.mutable_tensors(0)->mutable_tensor();
  tensor->clear_shape();
  tensor->clear_values();
  tensor->add_shape((int64_t{1} << 62) + 1);
  tensor->add_shape(4);
  tensor->add_values(0.0f);
  tensor->add_values(0.0f);
  tensor->add_values(0.0f);
  tensor->add_values(0.0f);
  EXPECT_THAT(store->AddVersion(small, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store->LatestVersion("m"), StatusIs(absl::StatusCode::kNotFound));
}


TYPED_TEST(ModelStoreConformanceTest, CatalogGenerationAdvancesAfterEveryCatalogWrite) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelStore> store, this->Open());
  auto generation = [&] { return store->CatalogGeneration().value_or(0); };
  ASSERT_TRUE(store->CatalogGeneration().has_value());
  uint64_t before = generation();
  ASSERT_OK(store->AddVersion(RandomVersion("m", 11), nullptr).status());
  EXPECT_GT(generation(), before);
  before = generation();
  ASSERT_OK(store->SetAlias("m", "prod", 1));
  EXPECT_GT(generation(), before);
  before = generation();
  EXPECT_THAT(store->SetAlias("m", "prod", 9), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_GT(generation(), before);  // a failed write counts too
  before = generation();
  ASSERT_OK(store->DeleteAlias("m", "prod"));
  EXPECT_GT(generation(), before);
  before = generation();
  ASSERT_OK(store->DeleteVersion("m", 1));
  EXPECT_GT(generation(), before);
}

}  // namespace
}  // namespace bnserve
