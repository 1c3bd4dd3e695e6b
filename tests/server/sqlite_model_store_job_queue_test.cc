// SqliteModelStore as a JobQueue (server/job_queue.h): the queue, leases,
// cancel requests, the reaper and the lease guard, in SQL.
#include <sqlite3.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_convert.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

QueuedJob MakeQueued(int64_t seq, const std::string& model) {
  QueuedJob queued;
  queued.job.set_job_id(absl::StrFormat("job-%06d", seq));
  queued.job.set_model_name(model);
  queued.job.set_state(v1::QUEUED);
  queued.full_request = SmallTrainRequest(model, 1);
  return queued;
}

// Reaps until a job is reaped or 10 s pass.
std::vector<v1::Job> ReapWithin10s(JobQueue* queue, const std::string& reason) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::vector<v1::Job>> reaped = queue->ReapExpiredLeases(reason);
    EXPECT_OK(reaped.status());
    if (!reaped.ok() || !reaped->empty()) return reaped.ok() ? *reaped : std::vector<v1::Job>{};
    absl::SleepFor(absl::Milliseconds(5));
  }
  return {};
}

TEST(SqliteJobQueueTest, JobsAreClaimedOldestFirstWithTheirFullRequestsAndLeases) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("queue.db")));
  JobQueue* queue = store.get();
  ASSERT_OK_AND_ASSIGN(int64_t first, queue->ReserveJobSeqs(3));
  EXPECT_EQ(first, 1);
  ASSERT_OK_AND_ASSIGN(int64_t next, queue->ReserveJobSeqs(1));
  EXPECT_EQ(next, 4);
  ASSERT_OK(queue->Enqueue({MakeQueued(1, "a"), MakeQueued(2, "b"), MakeQueued(3, "c")}, 3));
  EXPECT_THAT(queue->QueuedJobCount(), ::bnserve::testing::IsOkAndHolds(3));
  // Full: nothing of the batch is stored.
  EXPECT_THAT(queue->Enqueue({MakeQueued(4, "d")}, 3),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(queue->GetJob("job-000004"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue->Enqueue({MakeQueued(2, "b")}, -1),
              StatusIs(absl::StatusCode::kAlreadyExists));

  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claimed,
                       queue->ClaimNext("replica-a", absl::Seconds(30)));
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->job.job_id(), "job-000001");
  EXPECT_EQ(claimed->job.state(), v1::RUNNING);
  EXPECT_EQ(claimed->job.replica(), "replica-a");
  EXPECT_TRUE(claimed->job.has_started_at());
  EXPECT_EQ(claimed->full_request.train_data().inline_data().features().values_size(), 200 * 12);
  ASSERT_OK_AND_ASSIGN(v1::Job stored, queue->GetJob("job-000001"));
  EXPECT_EQ(stored.state(), v1::RUNNING);
  EXPECT_EQ(stored.replica(), "replica-a");
  EXPECT_THAT(queue->QueuedJobCount(), ::bnserve::testing::IsOkAndHolds(2));

  // A queued job is cancelled at once and is never claimed.
  ASSERT_OK_AND_ASSIGN(v1::Job cancelled, queue->RequestCancel("job-000002", "no"));
  EXPECT_EQ(cancelled.state(), v1::CANCELLED);
  EXPECT_EQ(cancelled.reason(), "no");
  ASSERT_OK_AND_ASSIGN(claimed, queue->ClaimNext("replica-b", absl::Seconds(30)));
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->job.job_id(), "job-000003");
  ASSERT_OK_AND_ASSIGN(claimed, queue->ClaimNext("replica-b", absl::Seconds(30)));
  EXPECT_FALSE(claimed.has_value());

  // A running job learns of its cancel request at its next renewal.
  ASSERT_OK_AND_ASSIGN(LeaseRenewal renewal,
                       queue->RenewLease("job-000001", "replica-a", absl::Seconds(30)));
  EXPECT_FALSE(renewal.cancel_requested);
  ASSERT_OK_AND_ASSIGN(v1::Job marked, queue->RequestCancel("job-000001", "stop it"));
  EXPECT_EQ(marked.state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(renewal, queue->RenewLease("job-000001", "replica-a", absl::Seconds(30)));
  EXPECT_TRUE(renewal.cancel_requested);
  EXPECT_EQ(renewal.cancel_reason, "stop it");
  // Only the holder renews.
  EXPECT_THAT(queue->RenewLease("job-000001", "replica-b", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  EXPECT_THAT(queue->RenewLease("job-000099", "replica-a", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kNotFound));

  // The holder records the final state; then it is finished for everyone.
  stored.set_state(v1::CANCELLED);
  stored.set_reason("stop it");
  ASSERT_OK(store->PutJob(stored));
  EXPECT_THAT(queue->RequestCancel("job-000001", "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(queue->RenewLease("job-000001", "replica-a", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Nothing expired: the live lease of job-000003 stays.
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> reaped, queue->ReapExpiredLeases("lost"));
  EXPECT_TRUE(reaped.empty());
}

TEST(SqliteJobQueueTest, AnExpiredLeaseIsReapedAndItsHolderCanNoLongerFinish) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("queue.db")));
  JobQueue* queue = store.get();
  ASSERT_OK(queue->Enqueue({MakeQueued(1, "ghosted")}, -1));
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claimed,
                       queue->ClaimNext("ghost", absl::Milliseconds(50)));
  ASSERT_TRUE(claimed.has_value());
  v1::EpochMetrics epoch;
  epoch.set_epoch(1);
  ASSERT_OK(store->AppendEpochMetrics("job-000001", epoch));

  const std::vector<v1::Job> reaped = ReapWithin10s(queue, "worker lost: test");
  ASSERT_EQ(reaped.size(), 1u);
  EXPECT_EQ(reaped[0].job_id(), "job-000001");
  EXPECT_EQ(reaped[0].state(), v1::FAILED);
  EXPECT_EQ(reaped[0].reason(), "worker lost: test");
  EXPECT_EQ(reaped[0].epochs_size(), 1);

  EXPECT_THAT(queue->RenewLease("job-000001", "ghost", absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  v1::Job late = claimed->job;
  late.set_state(v1::SUCCEEDED);
  EXPECT_THAT(store->PutJob(late),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  v1::ModelVersion version;
  version.set_model_name("ghosted");
  version.set_job_id("job-000001");
  EXPECT_THAT(store->AddVersion(version, &late),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  EXPECT_THAT(store->LatestVersion("ghosted"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(v1::Job now, queue->GetJob("job-000001"));
  EXPECT_EQ(now.state(), v1::FAILED);
  EXPECT_EQ(now.reason(), "worker lost: test");
  // A job without a replica (the local queue) is not guarded.
  v1::Job local;
  local.set_job_id("job-000002");
  local.set_state(v1::SUCCEEDED);
  EXPECT_OK(store->PutJob(local));
}

TEST(SqliteJobQueueTest, EpochsAfterListsTheLaterEpochsInOrder) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                       SqliteModelStore::Open(TempPath("queue.db")));
  ASSERT_OK(store->Enqueue({MakeQueued(1, "m")}, -1));
  for (int e : {3, 1, 2}) {
    v1::EpochMetrics epoch;
    epoch.set_epoch(e);
    ASSERT_OK(store->AppendEpochMetrics("job-000001", epoch));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<v1::EpochMetrics> after, store->EpochsAfter("job-000001", 1));
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].epoch(), 2);
  EXPECT_EQ(after[1].epoch(), 3);
}

TEST(SqliteJobQueueTest, ARegistryFromBeforeTheQueueOpensAndNumbersAfterItsJobs) {
  const std::string path = TempPath("store.db");
  {
    // The jobs table as servers before the queue made it, with job 7.
    v1::Job job;
    job.set_job_id("job-000007");
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
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES ('job-000007', 3, ?)", -1,
                                 &insert, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(insert, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path));
  ASSERT_OK_AND_ASSIGN(int64_t first, store->ReserveJobSeqs(2));
  EXPECT_EQ(first, 8);
  ASSERT_OK(store->Enqueue({MakeQueued(8, "m")}, -1));
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claimed,
                       store->ClaimNext("r", absl::Seconds(5)));
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->job.job_id(), "job-000008");
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> jobs, store->ListJobs());
  EXPECT_EQ(jobs.size(), 2u);
  // Still local-queue compatible: the old job reads back unchanged.
  EXPECT_EQ(jobs[0].job_id(), "job-000007");
  EXPECT_EQ(jobs[0].state(), v1::SUCCEEDED);
}

}  // namespace
}  // namespace bnserve
