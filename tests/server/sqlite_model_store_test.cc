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
#include "tests/server/model_store_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

// The SQLite-only behaviour: the registry lock, durability modes, file
// modes, old registries. What every backend must do is in
// model_store_conformance_test.cc.

using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::RandomVersion;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;

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

}  // namespace
}  // namespace bnserve
