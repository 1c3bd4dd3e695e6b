// What PostgresModelStore does beyond the ModelStore contract (that one is
// model_store_conformance_test.cc): several stores (replicas) on one
// database, migrations, the cross-store catalog generation, the shared job
// queue and its leases, and losing the database.
#include "server/postgres_model_store.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/model_store_test_util.h"
#include "tests/server/postgres_test_server.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::PostgresTestServer;
using ::bnserve::testing::RandomVersion;
using ::bnserve::testing::StatusIs;
using ::testing::HasSubstr;

class PostgresModelStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PostgresTestServer*> server = PostgresTestServer::Get();
    ASSERT_OK(server.status());
    server_ = *server;
    ASSERT_OK_AND_ASSIGN(url_, server_->CreateDatabase());
  }

  std::unique_ptr<PostgresModelStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<PostgresModelStore>> store =
        PostgresModelStore::Open(url_, PostgresModelStore::Options());
    EXPECT_OK(store.status());
    return store.ok() ? std::move(store).value() : nullptr;
  }

  PostgresTestServer* server_ = nullptr;
  std::string url_;
};

std::string JobId(int64_t seq) { return absl::StrFormat("job-%06d", seq); }

QueuedJob Queued(int64_t seq) {
  QueuedJob queued;
  queued.job.set_job_id(JobId(seq));
  queued.job.set_model_name("m");
  queued.job.set_state(v1::QUEUED);
  queued.full_request.set_model_name("m");
  queued.full_request.set_epochs(static_cast<int>(seq));
  return queued;
}

TEST(PostgresModelStoreUrlTest, RejectsUrlsThatAreNotPostgres) {
  EXPECT_THAT(PostgresModelStore::Open("var/bnserve.db", PostgresModelStore::Options()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(PostgresModelStore::IsPostgresUrl("postgres://u@h/db"));
  EXPECT_FALSE(PostgresModelStore::IsPostgresUrl("/tmp/x.db"));
}

TEST(PostgresModelStoreUrlTest, RedactedUrlHidesOnlyThePassword) {
  EXPECT_EQ(PostgresModelStore::RedactedUrl("postgresql://bn:s3cret@db:5432/reg"),
            "postgresql://bn:***@db:5432/reg");
  EXPECT_EQ(PostgresModelStore::RedactedUrl("postgres://bn@db:5432/reg"),
            "postgres://bn@db:5432/reg");
  EXPECT_EQ(PostgresModelStore::RedactedUrl("postgresql://db:5432/reg?user=x@y"),
            "postgresql://db:5432/reg?user=x@y");
  EXPECT_EQ(PostgresModelStore::RedactedUrl("var/bnserve.db"), "var/bnserve.db");
}

TEST(PostgresModelStoreUrlTest, AnUnreachableDatabaseIsUnavailable) {
  // Nothing listens on port 1.
  EXPECT_THAT(PostgresModelStore::Open("postgresql://bnserve@127.0.0.1:1/none",
                                       PostgresModelStore::Options()),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(PostgresModelStoreTest, TwoReplicasStartingTogetherMigrateOnce) {
  std::vector<absl::StatusOr<std::unique_ptr<PostgresModelStore>>> stores(3);
  {
    std::vector<std::thread> threads;
    for (auto& store : stores) {
      threads.emplace_back(
          [&] { store = PostgresModelStore::Open(url_, PostgresModelStore::Options()); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (auto& store : stores) {
    ASSERT_OK(store.status());
    EXPECT_THAT((*store)->SchemaVersion(), IsOkAndHolds(2));
  }
  pqxx::connection conn(url_);
  pqxx::nontransaction read(conn);
  EXPECT_EQ(read.exec("SELECT count(*) FROM schema_migrations")[0][0].as<int>(), 2);
  EXPECT_EQ(read.exec("SELECT count(*) FROM catalog_generation")[0][0].as<int>(), 1);
}

TEST_F(PostgresModelStoreTest, ConcurrentRegistrationFromThreeStoresNeverReusesANumber) {
  std::vector<std::unique_ptr<PostgresModelStore>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(OpenStore());
  ASSERT_TRUE(stores[0] && stores[1] && stores[2]);
  const v1::ModelVersion version = RandomVersion("m", 1);
  absl::Mutex mu;
  std::vector<int> numbers;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        absl::StatusOr<int> number = stores[t % 3]->AddVersion(version, nullptr);
        ASSERT_OK(number.status());
        absl::MutexLock lock(&mu);
        numbers.push_back(*number);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::sort(numbers.begin(), numbers.end());
  ASSERT_EQ(numbers.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(numbers[i], i + 1);
  // Deleting the newest does not free its number, seen from any store.
  ASSERT_OK(stores[1]->DeleteVersion("m", 60));
  EXPECT_THAT(stores[2]->AddVersion(version, nullptr), IsOkAndHolds(61));
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion read, stores[0]->GetVersion("m", 61, true));
  testing::ExpectBitIdenticalTensors(version, read);
}

TEST_F(PostgresModelStoreTest, AnotherStoresAliasMoveAdvancesTheGenerationWithinOneSecond) {
  std::unique_ptr<PostgresModelStore> a = OpenStore();
  std::unique_ptr<PostgresModelStore> b = OpenStore();
  ASSERT_TRUE(a && b);
  ASSERT_OK(a->AddVersion(RandomVersion("m", 1), nullptr).status());
  ASSERT_OK(a->AddVersion(RandomVersion("m", 2), nullptr).status());
  ASSERT_OK(a->SetAlias("m", "prod", 1));
  for (int round = 0; round < 3; ++round) {
    // Let b's listener settle on a's last change, then move the alias on a.
    absl::SleepFor(absl::Milliseconds(600));
    const uint64_t before = b->CatalogGeneration().value();
    const absl::Time moved = absl::Now();
    ASSERT_OK(a->SetAlias("m", "prod", round % 2 == 0 ? 2 : 1));
    while (b->CatalogGeneration().value() == before && absl::Now() - moved < absl::Seconds(2)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    const absl::Duration seen = absl::Now() - moved;
    EXPECT_LT(seen, absl::Seconds(1)) << "b saw a's alias move after " << seen;
    EXPECT_THAT(b->ResolveAlias("m", "prod"), IsOkAndHolds(round % 2 == 0 ? 2 : 1));
  }
}

TEST_F(PostgresModelStoreTest, AChangeRightAfterOpenIsNotMissed) {
  std::unique_ptr<PostgresModelStore> a = OpenStore();
  ASSERT_TRUE(a);
  for (int round = 0; round < 5; ++round) {
    // b's listener may not have read the generation row yet when a writes.
    std::unique_ptr<PostgresModelStore> b = OpenStore();
    ASSERT_TRUE(b);
    const uint64_t before = b->CatalogGeneration().value();
    ASSERT_OK(a->AddVersion(RandomVersion("m", round), nullptr).status());
    const absl::Time added = absl::Now();
    while (b->CatalogGeneration().value() == before && absl::Now() - added < absl::Seconds(3)) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    EXPECT_NE(b->CatalogGeneration().value(), before) << "round " << round;
  }
}

TEST_F(PostgresModelStoreTest, TheNotificationWakesTheListenerLongBeforeItsPoll) {
  PostgresModelStore::Options slow_poll;
  slow_poll.poll_interval = absl::Seconds(30);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresModelStore> b,
                       PostgresModelStore::Open(url_, slow_poll));
  std::unique_ptr<PostgresModelStore> a = OpenStore();
  ASSERT_TRUE(a);
  absl::SleepFor(absl::Milliseconds(300));  // b's listener is listening
  const uint64_t before = b->CatalogGeneration().value();
  const absl::Time added = absl::Now();
  ASSERT_OK(a->AddVersion(RandomVersion("m", 1), nullptr).status());
  while (b->CatalogGeneration().value() == before && absl::Now() - added < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_LT(absl::Now() - added, absl::Seconds(1));
}

TEST_F(PostgresModelStoreTest, ReservedSequenceNumbersAreConsecutiveAndNeverHandedOutTwice) {
  std::unique_ptr<PostgresModelStore> a = OpenStore();
  std::unique_ptr<PostgresModelStore> b = OpenStore();
  ASSERT_TRUE(a && b);
  absl::Mutex mu;
  std::set<int64_t> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const int count = 1 + (i % 3);
        absl::StatusOr<int64_t> first = (t % 2 == 0 ? a : b)->ReserveJobSeqs(count);
        ASSERT_OK(first.status());
        absl::MutexLock lock(&mu);
        for (int k = 0; k < count; ++k) EXPECT_TRUE(seen.insert(*first + k).second);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(*seen.begin(), 1);
  EXPECT_EQ(*seen.rbegin(), static_cast<int64_t>(seen.size()));  // no gaps either
  EXPECT_THAT(a->ReserveJobSeqs(0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PostgresModelStoreTest, ManyClaimersOnSeveralStoresNeverGetTheSameJob) {
  std::vector<std::unique_ptr<PostgresModelStore>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(OpenStore());
  ASSERT_TRUE(stores[0] && stores[1] && stores[2]);
  constexpr int kJobs = 90;
  std::vector<QueuedJob> jobs;
  for (int i = 1; i <= kJobs; ++i) jobs.push_back(Queued(i));
  ASSERT_OK(stores[0]->Enqueue(jobs, -1));
  EXPECT_THAT(stores[1]->QueuedJobCount(), IsOkAndHolds(kJobs));
  absl::Mutex mu;
  std::vector<std::string> claimed;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      const std::string replica = absl::StrCat("replica-", t);
      std::string previous;
      for (;;) {
        absl::StatusOr<std::optional<ClaimedJob>> job =
            stores[t % 3]->ClaimNext(replica, absl::Seconds(30));
        ASSERT_OK(job.status());
        if (!job->has_value()) return;
        EXPECT_EQ((*job)->job.state(), v1::RUNNING);
        EXPECT_EQ((*job)->job.replica(), replica);
        EXPECT_TRUE((*job)->job.has_started_at());
        // The full request came along; each claimer sees ascending ids.
        EXPECT_EQ((*job)->full_request.epochs(), std::stoi((*job)->job.job_id().substr(4)));
        EXPECT_GT((*job)->job.job_id(), previous);
        previous = (*job)->job.job_id();
        absl::MutexLock lock(&mu);
        claimed.push_back((*job)->job.job_id());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(),
            static_cast<size_t>(kJobs));
  EXPECT_THAT(stores[2]->QueuedJobCount(), IsOkAndHolds(0));
  ASSERT_OK_AND_ASSIGN(v1::Job job, stores[1]->GetJob(JobId(5)));
  EXPECT_EQ(job.state(), v1::RUNNING);
}

TEST_F(PostgresModelStoreTest, EnqueueIsAllOrNoneWithinTheBound) {
  std::unique_ptr<PostgresModelStore> store = OpenStore();
  ASSERT_TRUE(store);
  ASSERT_OK(store->Enqueue({Queued(1), Queued(2)}, 3));
  EXPECT_THAT(store->Enqueue({Queued(3), Queued(4)}, 3),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(store->QueuedJobCount(), IsOkAndHolds(2));
  EXPECT_THAT(store->GetJob(JobId(3)), StatusIs(absl::StatusCode::kNotFound));
  // A duplicate id: nothing of the batch is stored.
  EXPECT_THAT(store->Enqueue({Queued(5), Queued(1)}, -1),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store->GetJob(JobId(5)), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store->Enqueue({Queued(3)}, 3));
  EXPECT_THAT(store->QueuedJobCount(), IsOkAndHolds(3));

  // Concurrent enqueues from two stores never overfill the queue.
  std::unique_ptr<PostgresModelStore> other = OpenStore();
  ASSERT_TRUE(other);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        absl::Status status =
            (t % 2 == 0 ? store : other)->Enqueue({Queued(100 + t * 10 + i)}, 10);
        EXPECT_TRUE(status.ok() || absl::IsResourceExhausted(status)) << status;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(store->QueuedJobCount(), IsOkAndHolds(10));
}

TEST_F(PostgresModelStoreTest, AnExpiredLeaseIsReapedAndTheLateWorkerIsRefused) {
  std::unique_ptr<PostgresModelStore> worker = OpenStore();
  std::unique_ptr<PostgresModelStore> reaper = OpenStore();
  ASSERT_TRUE(worker && reaper);
  ASSERT_OK(worker->Enqueue({Queued(1), Queued(2)}, -1));
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> lost,
                       worker->ClaimNext("a", absl::Milliseconds(300)));
  ASSERT_TRUE(lost.has_value());
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> kept, worker->ClaimNext("a", absl::Seconds(30)));
  ASSERT_TRUE(kept.has_value());
  ASSERT_OK(worker->AppendEpochMetrics(lost->job.job_id(), [] {
    v1::EpochMetrics m;
    m.set_epoch(1);
    return m;
  }()));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> none, reaper->ReapExpiredLeases("worker lost"));
  EXPECT_TRUE(none.empty());
  ASSERT_OK(worker->RenewLease(lost->job.job_id(), "a", absl::Milliseconds(300)).status());
  absl::SleepFor(absl::Milliseconds(600));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> reaped,
                       reaper->ReapExpiredLeases("worker lost: lease expired"));
  ASSERT_EQ(reaped.size(), 1u);
  EXPECT_EQ(reaped[0].job_id(), lost->job.job_id());
  EXPECT_EQ(reaped[0].state(), v1::FAILED);
  EXPECT_EQ(reaped[0].reason(), "worker lost: lease expired");
  EXPECT_TRUE(reaped[0].has_finished_at());
  EXPECT_EQ(reaped[0].epochs_size(), 1);

  // The late worker: its renewal, final state and version are refused.
  EXPECT_THAT(worker->RenewLease(lost->job.job_id(), "a", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  v1::Job done = lost->job;
  done.set_state(v1::SUCCEEDED);
  EXPECT_THAT(worker->PutJob(done),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  EXPECT_THAT(worker->AddVersion(RandomVersion("m", 1), &done),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  EXPECT_THAT(worker->LatestVersion("m"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(v1::Job stored, reaper->GetJob(lost->job.job_id()));
  EXPECT_EQ(stored.state(), v1::FAILED);
  // Someone else's replica name does not pass either.
  v1::Job impostor = kept->job;
  impostor.set_state(v1::SUCCEEDED);
  impostor.set_replica("b");
  EXPECT_THAT(worker->PutJob(impostor), StatusIs(absl::StatusCode::kFailedPrecondition));

  // The live lease: the version and the finished job are stored together.
  v1::Job finished = kept->job;
  finished.set_state(v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(int number, worker->AddVersion(RandomVersion("m", 2), &finished));
  ASSERT_OK_AND_ASSIGN(stored, reaper->GetJob(kept->job.job_id()));
  EXPECT_EQ(stored.state(), v1::SUCCEEDED);
  EXPECT_EQ(stored.model_version(), number);
  EXPECT_THAT(worker->RenewLease(kept->job.job_id(), "a", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(worker->RenewLease("job-999999", "a", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kNotFound));
  // The finished job's request is gone from the database.
  pqxx::connection conn(url_);
  pqxx::nontransaction read(conn);
  EXPECT_EQ(read.exec("SELECT count(*) FROM jobs WHERE request IS NOT NULL")[0][0].as<int>(), 0);
}

TEST_F(PostgresModelStoreTest, CancelWorksOnQueuedAndRunningJobsFromAnyStore) {
  std::unique_ptr<PostgresModelStore> a = OpenStore();
  std::unique_ptr<PostgresModelStore> b = OpenStore();
  ASSERT_TRUE(a && b);
  ASSERT_OK(a->Enqueue({Queued(1), Queued(2)}, -1));
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> running, a->ClaimNext("a", absl::Seconds(30)));
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ(running->job.job_id(), JobId(1));

  ASSERT_OK_AND_ASSIGN(v1::Job cancelled, b->RequestCancel(JobId(2), "cancelled by bob"));
  EXPECT_EQ(cancelled.state(), v1::CANCELLED);
  EXPECT_EQ(cancelled.reason(), "cancelled by bob");
  ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> nothing, a->ClaimNext("a", absl::Seconds(30)));
  EXPECT_FALSE(nothing.has_value());

  ASSERT_OK_AND_ASSIGN(LeaseRenewal renewal, a->RenewLease(JobId(1), "a", absl::Seconds(30)));
  EXPECT_FALSE(renewal.cancel_requested);
  ASSERT_OK_AND_ASSIGN(v1::Job still_running, b->RequestCancel(JobId(1), "cancelled by carol"));
  EXPECT_EQ(still_running.state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(renewal, a->RenewLease(JobId(1), "a", absl::Seconds(30)));
  EXPECT_TRUE(renewal.cancel_requested);
  EXPECT_EQ(renewal.cancel_reason, "cancelled by carol");

  EXPECT_THAT(b->RequestCancel(JobId(2), "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(b->RequestCancel("job-000404", "x"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(PostgresModelStoreTest, EpochsAfterReturnsTheNewerEpochsInOrder) {
  std::unique_ptr<PostgresModelStore> store = OpenStore();
  ASSERT_TRUE(store);
  ASSERT_OK(store->Enqueue({Queued(1)}, -1));
  for (int epoch : {3, 1, 2}) {
    v1::EpochMetrics m;
    m.set_epoch(epoch);
    m.set_train_loss(epoch * 0.25);
    ASSERT_OK(store->AppendEpochMetrics(JobId(1), m));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<v1::EpochMetrics> after, store->EpochsAfter(JobId(1), 1));
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].epoch(), 2);
  EXPECT_EQ(after[1].epoch(), 3);
  EXPECT_DOUBLE_EQ(after[1].train_loss(), 0.75);
  ASSERT_OK_AND_ASSIGN(v1::Job job, store->GetJob(JobId(1)));
  EXPECT_EQ(job.epochs_size(), 3);
  EXPECT_THAT(store->GetJob("job-000404"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(PostgresModelStoreTest, AStatementThatWaitsPastTheTimeoutIsDeadlineExceeded) {
  PostgresModelStore::Options options;
  options.statement_timeout = absl::Milliseconds(200);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresModelStore> store,
                       PostgresModelStore::Open(url_, options));
  // Another session holds the models table: registration waits, then gives up.
  pqxx::connection holder(url_);
  pqxx::work lock(holder);
  lock.exec("LOCK TABLE models IN ACCESS EXCLUSIVE MODE");
  const absl::Time start = absl::Now();
  EXPECT_THAT(store->AddVersion(RandomVersion("m", 1), nullptr),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  lock.abort();
  EXPECT_THAT(store->AddVersion(RandomVersion("m", 1), nullptr), IsOkAndHolds(1));
}

TEST_F(PostgresModelStoreTest, PingFailsWhileTheDatabaseIsDownAndTheStoreRecovers) {
  std::unique_ptr<PostgresModelStore> store = OpenStore();
  ASSERT_TRUE(store);
  ASSERT_OK(store->AddVersion(RandomVersion("m", 1), nullptr).status());
  ASSERT_OK(store->Ping());
  ASSERT_OK(server_->Stop());
  EXPECT_THAT(store->Ping(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store->GetVersion("m", 1, false), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store->Ping(), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_OK(server_->Start());
  EXPECT_OK(store->Ping());
  // Every pooled connection reconnects: more calls than connections.
  for (int i = 0; i < 10; ++i) EXPECT_OK(store->GetVersion("m", 1, true).status());
  EXPECT_THAT(store->AddVersion(RandomVersion("m", 2), nullptr), IsOkAndHolds(2));
}

}  // namespace
}  // namespace bnserve
