#include "server/sqlite_model_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/network.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_convert.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A version whose tensors are those of a real (BN) network, with every value
// replaced by random bit patterns, including NaN payloads, infinities,
// denormals and -0, so that only a bit-exact store passes.
v1::ModelVersion RandomVersion(const std::string& name, uint64_t seed) {
  NetworkConfig config;
  config.input_size = 6;
  config.hidden_sizes = {5, 4};
  config.output_size = 3;
  absl::StatusOr<Network<float>> network = Network<float>::Create(config, seed);
  EXPECT_TRUE(network.ok()) << network.status();
  v1::ModelVersion version;
  version.set_model_name(name);
  *version.mutable_network() = NetworkConfigToProto(config);
  version.set_job_id("job-000001");
  TensorsToProto(network->ExportTensors(), version.mutable_tensors());
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const uint32_t specials[] = {0x7fc00001u, 0xff800000u, 0x00000001u, 0x80000000u, 0x7f7fffffu};
  for (v1::NamedTensor& named : *version.mutable_tensors()) {
    for (int i = 0; i < named.tensor().values_size(); ++i) {
      const uint32_t bits = i < 5 ? specials[i] : static_cast<uint32_t>(rng());
      float value;
      std::memcpy(&value, &bits, sizeof(value));
      named.mutable_tensor()->set_values(i, value);
    }
  }
  return version;
}

void ExpectBitIdenticalTensors(const v1::ModelVersion& expected, const v1::ModelVersion& actual) {
  ASSERT_EQ(expected.tensors_size(), actual.tensors_size());
  for (int t = 0; t < expected.tensors_size(); ++t) {
    const v1::NamedTensor& a = expected.tensors(t);
    const v1::NamedTensor& b = actual.tensors(t);
    EXPECT_EQ(a.name(), b.name());
    EXPECT_THAT(b.tensor().shape(), ::testing::ElementsAreArray(a.tensor().shape()));
    ASSERT_EQ(a.tensor().values_size(), b.tensor().values_size()) << a.name();
    EXPECT_EQ(0, std::memcmp(a.tensor().values().data(), b.tensor().values().data(),
                             sizeof(float) * a.tensor().values_size()))
        << "tensor " << a.name() << " differs";
  }
}

TEST(SqliteModelStoreTest, VersionRoundTripsBitExactlyIncludingRunningStatistics) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("dir/sub/store.db")));
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

TEST(SqliteModelStoreTest, ARegistryHasOneStoreAtATime) {
  const std::string path = TempPath("locked/store.db");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> first, SqliteModelStore::Open(path));
    absl::StatusOr<std::unique_ptr<SqliteModelStore>> second = SqliteModelStore::Open(path);
    EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(std::string(second.status().message()),
                ::testing::HasSubstr(absl::StrCat("is in use by pid ", getpid())));
    ASSERT_OK(first->AddVersion(RandomVersion("digits", 1), nullptr).status());
  }
  // Closing releases it; the data are intact.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> again, SqliteModelStore::Open(path));
  EXPECT_OK(again->GetVersion("digits", 1, true).status());
}

TEST(SqliteModelStoreTest, DurabilityChoosesTheSynchronousMode) {
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                         SqliteModelStore::Open(TempPath("normal.db")));
    EXPECT_THAT(store->SynchronousMode(), IsOkAndHolds(1));  // NORMAL
  }
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<SqliteModelStore> store,
      SqliteModelStore::Open(TempPath("full.db"), SqliteModelStore::Durability::kFull));
  EXPECT_THAT(store->SynchronousMode(), IsOkAndHolds(2));  // FULL
  ASSERT_OK(store->AddVersion(RandomVersion("digits", 1), nullptr).status());
}

TEST(SqliteModelStoreTest, ANewRegistryAndItsDirectoryAreOwnerOnly) {
  const std::string dir = TempPath("private");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(dir + "/sub/store.db"));
  ASSERT_OK(store->AddVersion(RandomVersion("digits", 1), nullptr).status());
  for (const auto& [path, mode] : std::vector<std::pair<std::string, int>>{
           {dir, 0700}, {dir + "/sub", 0700}, {dir + "/sub/store.db", 0600},
           {dir + "/sub/store.db-wal", 0600}, {dir + "/sub/store.db.lock", 0600},
           {dir + "/sub/store.db-reserve", 0600}}) {
    struct stat info;
    ASSERT_EQ(stat(path.c_str(), &info), 0) << path;
    EXPECT_EQ(info.st_mode & 0777, mode) << path;
  }
}

TEST(SqliteModelStoreTest, EverythingSurvivesReopen) {
  const std::string path = TempPath("store.db");
  const v1::ModelVersion version = RandomVersion("digits", 2);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
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

TEST(SqliteModelStoreTest, SweepsSurviveReopenAndAreReplacedById) {
  const std::string path = TempPath("store.db");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
    ASSERT_OK(store->PutSweep(TwoPointSweep("sweep-000002")));
    v1::Sweep first = TwoPointSweep("sweep-000001");
    ASSERT_OK(store->PutSweep(first));
    first.set_created_by("bob");
    ASSERT_OK(store->PutSweep(first));
    EXPECT_THAT(store->PutSweep(v1::Sweep()), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Sweep> sweeps, store->ListSweeps());
  ASSERT_EQ(sweeps.size(), 2u);
  EXPECT_EQ(sweeps[0].sweep_id(), "sweep-000001");
  EXPECT_EQ(sweeps[0].created_by(), "bob");
  EXPECT_EQ(sweeps[1].sweep_id(), "sweep-000002");
  ASSERT_EQ(sweeps[1].points_size(), 2);
  EXPECT_EQ(sweeps[1].points(1).job_id(), "job-000002");
  EXPECT_THAT(sweeps[1].request().weight_init_stds(), ElementsAre(0.1, 0.01));
}

TEST(SqliteModelStoreTest, ARegistryFromBeforeSweepsOpensWithItsJobsAndStoresSweeps) {
  const std::string path = TempPath("store.db");
  {
    // The jobs table as servers before sweeps made it, with one job.
    v1::Job job;
    job.set_job_id("job-000001");
    job.set_state(v1::SUCCEEDED);
    const std::string bytes = job.SerializeAsString();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, state INTEGER NOT NULL, "
                           "job BLOB NOT NULL)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_stmt* insert = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES ('job-000001', 3, ?)", -1,
                                 &insert, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(insert, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Sweep> none, store->ListSweeps());
  EXPECT_TRUE(none.empty());
  ASSERT_OK(store->PutSweep(TwoPointSweep("sweep-000001")));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Sweep> sweeps, store->ListSweeps());
  EXPECT_EQ(sweeps.size(), 1u);
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> jobs, store->ListJobs());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].state(), v1::SUCCEEDED);
}

TEST(SqliteModelStoreTest, UnfinishedJobsComeBackFailedAfterRestart) {
  const std::string path = TempPath("store.db");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
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

TEST(SqliteModelStoreTest, AliasesResolveMoveAndProtectTheirVersion) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("store.db")));
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

TEST(SqliteModelStoreTest, DeletedVersionsAreGoneAndTheirNumbersNotReused) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("store.db")));
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

TEST(SqliteModelStoreTest, VersionAndFinishedJobAreStoredTogether) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("store.db")));
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

TEST(SqliteModelStoreTest, ShapesWhoseElementCountOverflowsAreRejected) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("store.db")));
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

}  // namespace
}  // namespace bnserve
