// Two JobManagers ("replicas") sharing one job queue, in one process: the
// JobQueue of a SqliteModelStore passed to both as
// JobManagerOptions::shared_queue, and a PostgresModelStore's (a real
// PostgreSQL 15, tests/server/postgres_test_server.h).
#include <sqlite3.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "server/job_manager.h"
#include "server/model_catalog.h"
#include "server/postgres_model_store.h"
#include "server/sqlite_model_store.h"
#include "tests/server/postgres_test_server.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// The events one watcher received, in order.
class EventLog {
 public:
  JobManager::WatchCallback Callback() {
    return [this](const v1::JobEvent& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
    };
  }
  // Waits (up to 20 s) for the finished event; returns every event.
  std::vector<v1::JobEvent> WaitForFinished() {
    absl::MutexLock lock(&mu_);
    auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !events_.empty() && events_.back().has_finished();
    };
    mu_.AwaitWithTimeout(absl::Condition(&finished), absl::Seconds(20));
    return events_;
  }
  std::vector<v1::JobEvent> Events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
};

// The parameter names the store: "sqlite" or "postgres".
class JobManagerSharedTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      ASSERT_OK_AND_ASSIGN(::bnserve::testing::PostgresTestServer * server,
                           ::bnserve::testing::PostgresTestServer::Get());
      ASSERT_OK_AND_ASSIGN(std::string url, server->CreateDatabase());
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresModelStore> store,
                           PostgresModelStore::Open(url, PostgresModelStore::Options()));
      queue_ = store.get();
      owned_ = std::move(store);
    } else {
      db_path_ = TempPath("shared.db");
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store,
                           SqliteModelStore::Open(db_path_));
      queue_ = store.get();
      owned_ = std::move(store);
    }
    store_ = owned_.get();
    data_ = std::make_unique<DataResolver>("var/data");
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    replicas_.clear();
    catalogs_.clear();
  }

  JobManagerOptions SharedOptions(const std::string& replica) {
    JobManagerOptions options;
    options.shared_queue = queue_;
    options.replica_id = replica;
    options.lease = absl::Seconds(2);
    options.poll_interval = absl::Milliseconds(20);
    return options;
  }

  // Starts a replica on the shared store (its own catalog, as a process).
  JobManager* StartReplica(JobManagerOptions options) {
    catalogs_.push_back(std::make_unique<ModelCatalog>(store_));
    replicas_.push_back(std::make_unique<JobManager>(store_, catalogs_.back().get(),
                                                     data_.get(), std::move(options)));
    EXPECT_OK(replicas_.back()->Start());
    return replicas_.back().get();
  }

  // Starts "replica-a" and then "replica-b", each with SharedOptions edited
  // by `edit`.
  std::pair<JobManager*, JobManager*> StartTwoReplicas(
      const std::function<void(JobManagerOptions*)>& edit) {
    JobManager* replicas[2];
    int i = 0;
    for (const char* name : {"replica-a", "replica-b"}) {
      JobManagerOptions options = SharedOptions(name);
      edit(&options);
      replicas[i++] = StartReplica(std::move(options));
    }
    return {replicas[0], replicas[1]};
  }

  // An epoch hook that holds every worker until release_ is notified.
  std::function<void(const FinishedEpoch&)> HoldUntilReleased() {
    return [this](const FinishedEpoch&) { release_.WaitForNotification(); };
  }
  // An epoch hook that paces epochs (so a job runs long enough to watch).
  static std::function<void(const FinishedEpoch&)> Pace(absl::Duration per_epoch) {
    return [per_epoch](const FinishedEpoch&) { absl::SleepFor(per_epoch); };
  }

  // Polls `jobs` until the job is in `state` (or terminal), up to `within`.
  static v1::Job WaitFor(JobManager* jobs, const std::string& job_id, v1::JobState state,
                         absl::Duration within = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + within;
    while (true) {
      absl::StatusOr<v1::Job> job = jobs->Get(job_id);
      EXPECT_OK(job.status());
      if (!job.ok()) return {};
      if (job->state() == state || IsTerminal(job->state()) || absl::Now() > deadline) {
        return *job;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  std::string db_path_;  // sqlite
  std::unique_ptr<ModelStore> owned_;
  ModelStore* store_ = nullptr;
  JobQueue* queue_ = nullptr;
  std::unique_ptr<DataResolver> data_;
  std::vector<std::unique_ptr<ModelCatalog>> catalogs_;
  std::vector<std::unique_ptr<JobManager>> replicas_;
  absl::Notification release_;
};

TEST_P(JobManagerSharedTest, JobsSubmittedToBothReplicasFinishOnceSpreadOverBoth) {
  auto [a, b] = StartTwoReplicas([&](JobManagerOptions* options) {
    options->on_epoch_finished = Pace(absl::Milliseconds(20));
  });
  constexpr int kJobs = 12;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    JobManager* to = i % 2 == 0 ? a : b;
    ASSERT_OK_AND_ASSIGN(v1::Job job, to->Submit(SmallTrainRequest(absl::StrCat("m", i), 2)));
    EXPECT_EQ(job.state(), v1::QUEUED);
    ids.push_back(job.job_id());
  }
  // Ids are unique across the replicas.
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  std::map<std::string, int> by_replica;
  for (int i = 0; i < kJobs; ++i) {
    // Either replica answers for every job.
    const v1::Job done = WaitFor(i % 2 == 0 ? b : a, ids[i], v1::SUCCEEDED);
    ASSERT_EQ(done.state(), v1::SUCCEEDED) << ids[i] << ": " << done.reason();
    EXPECT_EQ(done.model_version(), 1);
    EXPECT_EQ(done.epochs_size(), 2);
    ++by_replica[done.replica()];
  }
  EXPECT_EQ(by_replica.size(), 2u) << "every job ran on one replica";
  EXPECT_GT(by_replica["replica-a"], 0);
  EXPECT_GT(by_replica["replica-b"], 0);
  // Exactly once: one version per model, one stored job per submission.
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::Model model, store_->GetModel(absl::StrCat("m", i)));
    EXPECT_EQ(model.versions_size(), 1) << model.name();
  }
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> stored, store_->ListJobs());
  EXPECT_EQ(stored.size(), static_cast<size_t>(kJobs));
  // List on either replica shows every job, newest first.
  v1::ListJobsRequest list;
  list.set_page_size(5);
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse page, b->List(list));
  ASSERT_EQ(page.jobs_size(), 5);
  EXPECT_EQ(page.jobs(0).job_id(), ids.back());
  list.set_page_token(page.next_page_token());
  list.set_page_size(100);
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse rest, a->List(list));
  EXPECT_EQ(rest.jobs_size(), kJobs - 5);
  EXPECT_TRUE(rest.next_page_token().empty());
}

TEST_P(JobManagerSharedTest, CancelOnOneReplicaStopsAJobRunningOnTheOther) {
  auto [a, b] = StartTwoReplicas([&](JobManagerOptions* options) {
    options->on_epoch_finished = Pace(absl::Milliseconds(20));
  });
  ASSERT_OK_AND_ASSIGN(v1::Job job, a->Submit(SmallTrainRequest("long", 200)));
  const v1::Job running = WaitFor(a, job.job_id(), v1::RUNNING);
  ASSERT_EQ(running.state(), v1::RUNNING);
  JobManager* other = running.replica() == "replica-a" ? b : a;
  const absl::Time asked = absl::Now();
  ASSERT_OK_AND_ASSIGN(v1::Job marked, other->Cancel(job.job_id()));
  EXPECT_EQ(marked.state(), v1::RUNNING);
  const v1::Job done = WaitFor(other, job.job_id(), v1::CANCELLED, absl::Seconds(5));
  EXPECT_EQ(done.state(), v1::CANCELLED);
  EXPECT_EQ(done.reason(), "cancelled by request");
  // One epoch (20 ms) plus a poll interval (20 ms), with slack for a busy machine.
  EXPECT_LT(absl::Now() - asked, absl::Seconds(3));
  EXPECT_LT(done.epochs_size(), 200);
  EXPECT_THAT(store_->LatestVersion("long"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(other->Cancel(job.job_id()), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(JobManagerSharedTest, WatchOnAnotherReplicaSeesHistoryThenEveryEpochThenFinished) {
  auto [a, b] = StartTwoReplicas([&](JobManagerOptions* options) {
    options->on_epoch_finished = Pace(absl::Milliseconds(40));
  });
  constexpr int kEpochs = 12;
  ASSERT_OK_AND_ASSIGN(v1::Job job, a->Submit(SmallTrainRequest("watched", kEpochs)));
  const v1::Job running = WaitFor(a, job.job_id(), v1::RUNNING);
  ASSERT_EQ(running.state(), v1::RUNNING);
  JobManager* other = running.replica() == "replica-a" ? b : a;
  EventLog log;
  ASSERT_OK_AND_ASSIGN(JobManager::WatchId id, other->Watch(job.job_id(), log.Callback()));
  EXPECT_NE(id, 0u);
  const std::vector<v1::JobEvent> events = log.WaitForFinished();
  ASSERT_EQ(events.size(), static_cast<size_t>(kEpochs + 3));
  EXPECT_EQ(events[0].state(), v1::QUEUED);
  EXPECT_EQ(events[1].state(), v1::RUNNING);
  for (int e = 1; e <= kEpochs; ++e) {
    ASSERT_TRUE(events[1 + e].has_epoch()) << e;
    EXPECT_EQ(events[1 + e].epoch().epoch(), e);
  }
  ASSERT_TRUE(events.back().has_finished());
  EXPECT_EQ(events.back().finished().state(), v1::SUCCEEDED);
  EXPECT_EQ(events.back().finished().replica(), running.replica());
  other->Unwatch(job.job_id(), id);
}

TEST_P(JobManagerSharedTest, UnwatchStopsAPolledWatch) {
  auto [a, b] = StartTwoReplicas([&](JobManagerOptions* options) {
    options->on_epoch_finished = HoldUntilReleased();
  });
  // Held in its first epoch on either replica; watched from the other.
  ASSERT_OK_AND_ASSIGN(v1::Job job, a->Submit(SmallTrainRequest("held", 3)));
  const v1::Job running = WaitFor(a, job.job_id(), v1::RUNNING);
  JobManager* other = running.replica() == "replica-a" ? b : a;
  EventLog log;
  ASSERT_OK_AND_ASSIGN(JobManager::WatchId id, other->Watch(job.job_id(), log.Callback()));
  other->Unwatch(job.job_id(), id);
  release_.Notify();
  ASSERT_EQ(WaitFor(other, job.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  // Give the poller several intervals in which it would have delivered.
  absl::SleepFor(absl::Milliseconds(200));
  for (const v1::JobEvent& event : log.Events()) EXPECT_FALSE(event.has_finished());
}

TEST_P(JobManagerSharedTest, ADeadReplicasJobIsReapedAndItsLateResultsRefused) {
  // The ghost claims a job before any live replica could, and never renews.
  ASSERT_OK_AND_ASSIGN(int64_t seq, queue_->ReserveJobSeqs(1));
  QueuedJob queued;
  queued.job.set_job_id(absl::StrFormat("job-%06d", seq));
  queued.job.set_model_name("ghosted");
  queued.job.set_state(v1::QUEUED);
  queued.full_request = SmallTrainRequest("ghosted", 1);
  ASSERT_OK(queue_->Enqueue({queued}, -1));
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claimed,
                       queue_->ClaimNext("ghost", absl::Milliseconds(300)));
  ASSERT_TRUE(claimed.has_value());
  const absl::Time claimed_at = absl::Now();

  JobManager* a = StartReplica(SharedOptions("replica-a"));
  // Start leaves the ghost's running job alone (no "interrupted by restart").
  ASSERT_OK_AND_ASSIGN(v1::Job at_start, a->Get(queued.job.job_id()));
  if (absl::Now() - claimed_at < absl::Milliseconds(250)) {
    EXPECT_EQ(at_start.state(), v1::RUNNING);
  }
  // Lease (300 ms) + reap period (4 polls of 20 ms), with slack.
  const v1::Job reaped = WaitFor(a, queued.job.job_id(), v1::FAILED, absl::Seconds(5));
  ASSERT_EQ(reaped.state(), v1::FAILED);
  EXPECT_THAT(reaped.reason(), HasSubstr("worker lost"));
  EXPECT_LT(absl::Now() - claimed_at, absl::Seconds(5));

  v1::Job late = claimed->job;
  late.set_state(v1::SUCCEEDED);
  EXPECT_THAT(store_->PutJob(late),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  v1::ModelVersion version;
  version.set_model_name("ghosted");
  version.set_job_id(late.job_id());
  EXPECT_THAT(store_->AddVersion(version, &late),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  EXPECT_THAT(store_->LatestVersion("ghosted"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(v1::Job after, a->Get(late.job_id()));
  EXPECT_EQ(after.state(), v1::FAILED);
}

// SQLite only: it expires a lease through a second connection to the file.
class JobManagerSharedSqliteTest : public JobManagerSharedTest {};

// A live replica whose lease is reaped (as if it had stalled past it) stops
// the run, and the store keeps the reaper's FAILED and refuses its version.
TEST_P(JobManagerSharedSqliteTest, AReplicaThatLostItsLeaseRegistersNothing) {
  JobManagerOptions a_options = SharedOptions("replica-a");
  a_options.on_epoch_finished = HoldUntilReleased();
  JobManager* a = StartReplica(a_options);
  ASSERT_OK_AND_ASSIGN(v1::Job job, a->Submit(SmallTrainRequest("stalled", 3)));
  ASSERT_EQ(WaitFor(a, job.job_id(), v1::RUNNING).state(), v1::RUNNING);
  // Expire the lease behind the store's back (another connection) and reap
  // it before the replica's next renewal (it renews every 20 ms).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  std::vector<v1::Job> reaped_now;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (reaped_now.empty() && absl::Now() < give_up) {
    ASSERT_EQ(sqlite3_exec(db, "UPDATE job_queue SET lease_until = 0", nullptr, nullptr, nullptr),
              SQLITE_OK);
    ASSERT_OK_AND_ASSIGN(reaped_now, queue_->ReapExpiredLeases("worker lost: stalled"));
  }
  sqlite3_close(db);
  ASSERT_EQ(reaped_now.size(), 1u);
  EXPECT_EQ(reaped_now[0].state(), v1::FAILED);
  // The worker is still in its epoch; once it goes on it sees the lost lease.
  release_.Notify();
  const v1::Job reaped = WaitFor(a, job.job_id(), v1::FAILED, absl::Seconds(5));
  EXPECT_EQ(reaped.state(), v1::FAILED);
  EXPECT_EQ(reaped.reason(), "worker lost: stalled");
  // The run ends (stopped by the lost lease) without a version.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (a->Stats().running > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(a->Stats().running, 0);
  ASSERT_OK_AND_ASSIGN(v1::Job after, a->Get(job.job_id()));
  EXPECT_EQ(after.state(), v1::FAILED);
  EXPECT_THAT(after.reason(), HasSubstr("worker lost"));
  EXPECT_THAT(store_->LatestVersion("stalled"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(JobManagerSharedTest, MaxQueueHoldsAcrossReplicas) {
  auto [a, b] = StartTwoReplicas([&](JobManagerOptions* options) {
    options->max_queue = 2;
    options->on_epoch_finished = HoldUntilReleased();
  });
  // Two jobs occupy both workers (one each), held in their first epoch.
  ASSERT_OK_AND_ASSIGN(v1::Job first, a->Submit(SmallTrainRequest("q", 1)));
  ASSERT_OK_AND_ASSIGN(v1::Job second, b->Submit(SmallTrainRequest("q", 1)));
  ASSERT_EQ(WaitFor(a, first.job_id(), v1::RUNNING).state(), v1::RUNNING);
  ASSERT_EQ(WaitFor(a, second.job_id(), v1::RUNNING).state(), v1::RUNNING);
  // Two wait, one submitted on each replica; the queue is then full on both.
  ASSERT_OK(a->Submit(SmallTrainRequest("q", 1)).status());
  ASSERT_OK(b->Submit(SmallTrainRequest("q", 1)).status());
  EXPECT_THAT(a->Submit(SmallTrainRequest("q", 1)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("queue is full")));
  EXPECT_THAT(b->Submit(SmallTrainRequest("q", 1)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(b->SubmitAll({SmallTrainRequest("q", 1)}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(a->Stats().queued, 2);
  EXPECT_EQ(b->Stats().queue_depth, 2);
  release_.Notify();
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse all, a->List(v1::ListJobsRequest()));
  ASSERT_EQ(all.jobs_size(), 4);
  for (const v1::Job& job : all.jobs()) {
    EXPECT_EQ(WaitFor(b, job.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  }
}

TEST_P(JobManagerSharedTest, ShutdownCancelsOnlyThisReplicasJobs) {
  auto [a, b] = StartTwoReplicas([&](JobManagerOptions* options) {
    options->on_epoch_finished = Pace(absl::Milliseconds(20));
  });
  ASSERT_OK_AND_ASSIGN(v1::Job first, a->Submit(SmallTrainRequest("s", 200)));
  ASSERT_OK_AND_ASSIGN(v1::Job second, b->Submit(SmallTrainRequest("s", 200)));
  const v1::Job one = WaitFor(a, first.job_id(), v1::RUNNING);
  const v1::Job two = WaitFor(a, second.job_id(), v1::RUNNING);
  ASSERT_EQ(one.state(), v1::RUNNING);
  ASSERT_EQ(two.state(), v1::RUNNING);
  ASSERT_NE(one.replica(), two.replica());
  ASSERT_OK_AND_ASSIGN(v1::Job waiting, b->Submit(SmallTrainRequest("s", 2)));
  JobManager* stopping = one.replica() == "replica-a" ? a : b;
  JobManager* staying = stopping == a ? b : a;
  stopping->Shutdown("server shutting down");
  ASSERT_OK_AND_ASSIGN(v1::Job stopped, queue_->GetJob(one.job_id()));
  EXPECT_EQ(stopped.state(), v1::CANCELLED);
  EXPECT_EQ(stopped.reason(), "server shutting down");
  // The other replica's running and queued jobs were not touched.
  ASSERT_OK_AND_ASSIGN(v1::Job still, staying->Get(two.job_id()));
  EXPECT_EQ(still.state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(v1::Job queued, staying->Get(waiting.job_id()));
  EXPECT_EQ(queued.state(), v1::QUEUED);
  ASSERT_OK(staying->Cancel(two.job_id()).status());
  const v1::Job ran = WaitFor(staying, waiting.job_id(), v1::SUCCEEDED);
  EXPECT_EQ(ran.state(), v1::SUCCEEDED) << ran.reason();
  EXPECT_EQ(ran.replica(), staying == a ? "replica-a" : "replica-b");
  EXPECT_THAT(stopping->Submit(SmallTrainRequest("s", 1)).status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

INSTANTIATE_TEST_SUITE_P(Stores, JobManagerSharedTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
INSTANTIATE_TEST_SUITE_P(Stores, JobManagerSharedSqliteTest, ::testing::Values("sqlite"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace bnserve
