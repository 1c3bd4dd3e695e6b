#include "server/job_manager.h"

#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "server/model_catalog.h"
#include "server/sqlite_model_store.h"
#include "tests/server/forwarding_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::ForwardingModelStore;
using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;

// A store, catalog, resolver and job manager on a fresh database.
class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = TempPath("jobs.db"); }

  void StartManager(JobManagerOptions options = {}) {
    auto store = SqliteModelStore::Open(path_);
    ASSERT_OK(store.status());
    store_ = *std::move(store);
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
    data_ = std::make_unique<DataResolver>("var/data");
    jobs_ = std::make_unique<JobManager>(store_.get(), catalog_.get(), data_.get(), options);
    ASSERT_OK(jobs_->Start());
  }

  void StopManager() {
    jobs_.reset();
    data_.reset();
    catalog_.reset();
    store_.reset();
  }

  // Polls until the job reaches `state` or a terminal state (or 20 s pass).
  v1::Job WaitFor(const std::string& job_id, v1::JobState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (true) {
      absl::StatusOr<v1::Job> job = jobs_->Get(job_id);
      EXPECT_OK(job.status());
      if (!job.ok()) return {};
      const v1::JobState s = job->state();
      if (s == state || s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED ||
          absl::Now() > deadline) {
        return *job;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  std::string path_;
  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<DataResolver> data_;
  std::unique_ptr<JobManager> jobs_;
};

TEST_F(JobManagerTest, JobRunsToSuccessAndRegistersItsVersion) {
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job queued, jobs_->Submit(SmallTrainRequest("synthetic", 2)));
  EXPECT_EQ(queued.job_id(), "job-000001");
  EXPECT_EQ(queued.total_epochs(), 2);
  // Inline data are not echoed back, only their shape.
  EXPECT_EQ(queued.request().train_data().inline_data().features().values_size(), 0);
  EXPECT_EQ(queued.request().train_data().inline_data().features().shape(0), 200);

  const v1::Job done = WaitFor(queued.job_id(), v1::SUCCEEDED);
  ASSERT_EQ(done.state(), v1::SUCCEEDED) << done.reason();
  ASSERT_EQ(done.epochs_size(), 2);
  EXPECT_EQ(done.epochs(0).epoch(), 1);
  EXPECT_EQ(done.epochs(1).epoch(), 2);
  EXPECT_GT(done.epochs(1).train_accuracy(), 0.0);
  EXPECT_EQ(done.model_version(), 1);
  EXPECT_TRUE(done.has_started_at());
  EXPECT_TRUE(done.has_finished_at());

  v1::ModelRef ref;
  ref.set_name("synthetic");
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion version, catalog_->Get(ref, true));
  EXPECT_EQ(version.version(), 1);
  EXPECT_EQ(version.job_id(), done.job_id());
  EXPECT_EQ(version.network().input_size(), 12);  // taken from the data
  EXPECT_EQ(version.final_metrics().epoch(), 2);
  EXPECT_GT(version.tensors_size(), 0);
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, catalog_->Load(ref));
  EXPECT_EQ(loaded.network->config().output_size, 3);

  // The job and its metrics are in the store as well.
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> stored, store_->ListJobs());
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].state(), v1::SUCCEEDED);
  EXPECT_EQ(stored[0].model_version(), 1);
  EXPECT_EQ(stored[0].epochs_size(), 2);
}

// A run whose weights diverge to NaN/Inf (a learning rate of 1e30) fails
// instead of registering a version that answers NaN.
TEST_F(JobManagerTest, ADivergedJobFailsAndRegistersNothing) {
  StartManager();
  v1::TrainRequest request = SmallTrainRequest("diverged", 2);
  request.mutable_optimizer()->set_type(v1::SGD);
  request.mutable_optimizer()->set_learning_rate(1e30);
  ASSERT_OK_AND_ASSIGN(v1::Job queued, jobs_->Submit(request));
  const v1::Job done = WaitFor(queued.job_id(), v1::FAILED);
  EXPECT_EQ(done.state(), v1::FAILED);
  EXPECT_THAT(done.reason(), ::testing::HasSubstr("non-finite"));
  v1::ModelRef ref;
  ref.set_name("diverged");
  EXPECT_THAT(catalog_->Get(ref, false).status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(JobManagerTest, SameSeedGivesBitIdenticalVersions) {
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job a, jobs_->Submit(SmallTrainRequest("same", 1)));
  ASSERT_OK_AND_ASSIGN(v1::Job b, jobs_->Submit(SmallTrainRequest("same", 1)));
  ASSERT_EQ(WaitFor(a.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  ASSERT_EQ(WaitFor(b.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  v1::ModelRef ref;
  ref.set_name("same");
  ref.set_version(1);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion first, catalog_->Get(ref, true));
  ref.set_version(2);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion second, catalog_->Get(ref, true));
  ASSERT_EQ(first.tensors_size(), second.tensors_size());
  for (int i = 0; i < first.tensors_size(); ++i) {
    EXPECT_EQ(first.tensors(i).SerializeAsString(), second.tensors(i).SerializeAsString())
        << first.tensors(i).name();
  }
}

TEST_F(JobManagerTest, CancellingARunningJobStopsItPromptly) {
  JobManagerOptions options;
  options.max_epochs = 5000;
  StartManager(options);
  // Thousands of epochs: it only ends by cancellation.
  v1::TrainRequest request = SmallTrainRequest("long", 5000);
  request.set_batch_size(2);
  ASSERT_OK_AND_ASSIGN(v1::Job job, jobs_->Submit(request));
  absl::Notification first_epoch;
  ASSERT_OK_AND_ASSIGN(JobManager::WatchId id,
                       jobs_->Watch(job.job_id(), [&](const v1::JobEvent& event) {
                         if (event.has_epoch() && !first_epoch.HasBeenNotified()) {
                           first_epoch.Notify();
                         }
                       }));
  ASSERT_TRUE(first_epoch.WaitForNotificationWithTimeout(absl::Seconds(20)));
  jobs_->Unwatch(job.job_id(), id);

  const absl::Time cancel_time = absl::Now();
  ASSERT_OK_AND_ASSIGN(v1::Job cancelling, jobs_->Cancel(job.job_id()));
  const v1::Job done = WaitFor(job.job_id(), v1::CANCELLED);
  const absl::Duration took = absl::Now() - cancel_time;
  EXPECT_EQ(done.state(), v1::CANCELLED);
  EXPECT_EQ(done.reason(), "cancelled by request");
  EXPECT_LT(done.epochs_size(), 5000);
  // One iteration on 2 rows is microseconds; an epoch (100 iterations) far
  // less than this bound, and the whole run minutes.
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_EQ(done.model_version(), 0);
  v1::ModelRef ref;
  ref.set_name("long");
  EXPECT_THAT(catalog_->Get(ref, false), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(jobs_->Cancel(job.job_id()), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(JobManagerTest, FullQueueIsResourceExhaustedAndQueuedJobsCancelAtOnce) {
  JobManagerOptions options;
  options.max_queue = 2;
  options.max_epochs = 5000;
  StartManager(options);
  v1::TrainRequest blocker = SmallTrainRequest("blocker", 5000);
  blocker.set_batch_size(2);
  ASSERT_OK_AND_ASSIGN(v1::Job running, jobs_->Submit(blocker));
  ASSERT_EQ(WaitFor(running.job_id(), v1::RUNNING).state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(v1::Job q1, jobs_->Submit(SmallTrainRequest("q", 1)));
  ASSERT_OK_AND_ASSIGN(v1::Job q2, jobs_->Submit(SmallTrainRequest("q", 1)));
  EXPECT_THAT(jobs_->Submit(SmallTrainRequest("q", 1)),
              StatusIs(absl::StatusCode::kResourceExhausted));

  ASSERT_OK_AND_ASSIGN(v1::Job cancelled, jobs_->Cancel(q1.job_id()));
  EXPECT_EQ(cancelled.state(), v1::CANCELLED);  // a queued job: at once
  // Its slot is free again.
  ASSERT_OK_AND_ASSIGN(v1::Job q3, jobs_->Submit(SmallTrainRequest("q", 1)));

  // Newest first, filtered, paged.
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse all, jobs_->List(v1::ListJobsRequest()));
  ASSERT_EQ(all.jobs_size(), 4);
  EXPECT_EQ(all.jobs(0).job_id(), q3.job_id());
  EXPECT_EQ(all.jobs(3).job_id(), running.job_id());
  EXPECT_EQ(all.next_page_token(), "");
  v1::ListJobsRequest filter;
  filter.set_model_name("q");
  filter.set_state(v1::QUEUED);
  filter.set_page_size(1);
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse page1, jobs_->List(filter));
  ASSERT_EQ(page1.jobs_size(), 1);
  EXPECT_EQ(page1.jobs(0).job_id(), q3.job_id());
  ASSERT_NE(page1.next_page_token(), "");
  filter.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse page2, jobs_->List(filter));
  ASSERT_EQ(page2.jobs_size(), 1);
  EXPECT_EQ(page2.jobs(0).job_id(), q2.job_id());
  EXPECT_EQ(page2.next_page_token(), "");
  filter.set_page_token("bogus");
  EXPECT_THAT(jobs_->List(filter), StatusIs(absl::StatusCode::kInvalidArgument));

  // Shutdown cancels the running and the queued jobs and joins the worker.
  jobs_->Shutdown("server shutting down");
  for (const std::string& id : {running.job_id(), q2.job_id(), q3.job_id()}) {
    ASSERT_OK_AND_ASSIGN(v1::Job job, jobs_->Get(id));
    EXPECT_EQ(job.state(), v1::CANCELLED) << id;
    EXPECT_EQ(job.reason(), "server shutting down") << id;
  }
  EXPECT_THAT(jobs_->Submit(SmallTrainRequest("q", 1)),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(JobManagerTest, SubmitAllQueuesEveryJobOrNone) {
  JobManagerOptions options;
  options.max_queue = 3;
  options.max_epochs = 5000;
  StartManager(options);
  v1::TrainRequest blocker = SmallTrainRequest("blocker", 5000);
  blocker.set_batch_size(2);
  ASSERT_OK_AND_ASSIGN(v1::Job running, jobs_->Submit(blocker));
  ASSERT_EQ(WaitFor(running.job_id(), v1::RUNNING).state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(v1::Job waiting, jobs_->Submit(SmallTrainRequest("q", 1)));

  // Room for 2 more: 3 are refused, and none of them is queued.
  std::vector<v1::TrainRequest> three(3, SmallTrainRequest("grid", 1));
  EXPECT_THAT(jobs_->SubmitAll(three), StatusIs(absl::StatusCode::kResourceExhausted,
                                                ::testing::HasSubstr("room for 2 more jobs")));
  // A bad request anywhere refuses all, named by its description.
  std::vector<v1::TrainRequest> two(2, SmallTrainRequest("grid", 1));
  two[1].set_epochs(-1);
  two[1].set_description("point 1");
  EXPECT_THAT(jobs_->SubmitAll(two), StatusIs(absl::StatusCode::kInvalidArgument,
                                              ::testing::StartsWith("point 1: ")));
  two[1].clear_description();
  EXPECT_THAT(jobs_->SubmitAll(two), StatusIs(absl::StatusCode::kInvalidArgument,
                                              ::testing::StartsWith("request 1: ")));
  EXPECT_THAT(jobs_->SubmitAll({}), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse before, jobs_->List(v1::ListJobsRequest()));
  EXPECT_EQ(before.jobs_size(), 2);

  two[1].set_epochs(1);
  two[1].set_seed(7);
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> grid, jobs_->SubmitAll(two, "alice"));
  ASSERT_EQ(grid.size(), 2u);
  // Consecutive ids right after the jobs before, in the requests' order.
  EXPECT_EQ(grid[0].job_id(), "job-000003");
  EXPECT_EQ(grid[1].job_id(), "job-000004");
  EXPECT_EQ(grid[1].request().seed(), 7u);
  for (const v1::Job& job : grid) {
    EXPECT_EQ(job.state(), v1::QUEUED);
    EXPECT_EQ(job.created_by(), "alice");
    // The inline data are kept as their shapes only.
    EXPECT_EQ(job.request().train_data().inline_data().features().values_size(), 0);
  }
  // The queue is full now.
  EXPECT_THAT(jobs_->SubmitAll({SmallTrainRequest("grid", 1)}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  jobs_->Shutdown("server shutting down");
  EXPECT_THAT(jobs_->SubmitAll(two), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(JobManagerTest, StatsCountEveryJobByStateAndTheQueue) {
  JobManagerOptions options;
  options.max_queue = 3;
  options.max_epochs = 5000;
  StartManager(options);
  ASSERT_OK_AND_ASSIGN(v1::Job done, jobs_->Submit(SmallTrainRequest("ok", 1)));
  ASSERT_EQ(WaitFor(done.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  v1::TrainRequest diverging = SmallTrainRequest("diverged", 1);
  diverging.mutable_optimizer()->set_type(v1::SGD);
  diverging.mutable_optimizer()->set_learning_rate(1e30);
  ASSERT_OK_AND_ASSIGN(v1::Job failed, jobs_->Submit(diverging));
  ASSERT_EQ(WaitFor(failed.job_id(), v1::FAILED).state(), v1::FAILED);
  v1::TrainRequest blocker = SmallTrainRequest("blocker", 5000);
  blocker.set_batch_size(2);
  ASSERT_OK_AND_ASSIGN(v1::Job running, jobs_->Submit(blocker));
  ASSERT_EQ(WaitFor(running.job_id(), v1::RUNNING).state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(v1::Job q1, jobs_->Submit(SmallTrainRequest("q", 1)));
  ASSERT_OK_AND_ASSIGN(v1::Job q2, jobs_->Submit(SmallTrainRequest("q", 1)));
  ASSERT_OK(jobs_->Cancel(q1.job_id()).status());

  JobStats stats = jobs_->Stats();
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.running, 1);
  EXPECT_EQ(stats.queued, 1);
  EXPECT_EQ(stats.cancelled, 1);
  EXPECT_EQ(stats.queue_depth, 1);
  EXPECT_EQ(stats.queue_capacity, 3);

  jobs_->Shutdown("server shutting down");  // cancels the running and the queued job
  stats = jobs_->Stats();
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.queued, 0);
  EXPECT_EQ(stats.cancelled, 3);
  EXPECT_EQ(stats.queue_depth, 0);
}

TEST_F(JobManagerTest, TheEpochListenerHearsEveryEpochWithItsRows) {
  absl::Mutex mu;
  std::vector<FinishedEpoch> heard;
  JobManagerOptions options;
  options.on_epoch_finished = [&](const FinishedEpoch& epoch) {
    absl::MutexLock lock(&mu);
    heard.push_back(epoch);
  };
  StartManager(options);
  v1::TrainRequest request = SmallTrainRequest("listened", 3, /*rows=*/210);
  request.set_batch_size(20);  // 10 full batches per epoch: 200 of the 210 rows
  ASSERT_OK_AND_ASSIGN(v1::Job queued, jobs_->Submit(request));
  const v1::Job done = WaitFor(queued.job_id(), v1::SUCCEEDED);
  ASSERT_EQ(done.state(), v1::SUCCEEDED) << done.reason();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(heard.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(heard[i].job_id, queued.job_id());
    EXPECT_EQ(heard[i].model_name, "listened");
    EXPECT_EQ(heard[i].epoch, i + 1);
    EXPECT_EQ(heard[i].rows, 200);
    EXPECT_EQ(heard[i].seconds, done.epochs(i).seconds());
  }
}

TEST_F(JobManagerTest, AnAllocationFailureInAJobFailsItAndTheWorkerGoesOn) {
  // The listener runs inside the training loop, on the worker: an
  // allocation failing there stands for one in a too-large forward pass.
  JobManagerOptions options;
  options.on_epoch_finished = [](const FinishedEpoch& epoch) {
    if (epoch.model_name == "oom") throw std::bad_alloc();
  };
  StartManager(options);
  ASSERT_OK_AND_ASSIGN(v1::Job doomed, jobs_->Submit(SmallTrainRequest("oom", 3)));
  ASSERT_OK_AND_ASSIGN(v1::Job next, jobs_->Submit(SmallTrainRequest("after", 2)));
  const v1::Job failed = WaitFor(doomed.job_id(), v1::FAILED);
  ASSERT_EQ(failed.state(), v1::FAILED);
  EXPECT_THAT(failed.reason(), ::testing::HasSubstr("ran out of memory"));
  EXPECT_EQ(WaitFor(next.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  // The failure is stored: a restart reads the same state and reason.
  StopManager();
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job reread, jobs_->Get(doomed.job_id()));
  EXPECT_EQ(reread.state(), v1::FAILED);
  EXPECT_EQ(reread.reason(), failed.reason());
}

TEST_F(JobManagerTest, LateWatcherGetsHistoryThenLiveEventsInOrder) {
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job job, jobs_->Submit(SmallTrainRequest("watched", 3)));
  ASSERT_EQ(WaitFor(job.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  // Joining after the end: the whole history, ending with the final job.
  std::vector<v1::JobEvent> events;
  ASSERT_OK_AND_ASSIGN(JobManager::WatchId id,
                       jobs_->Watch(job.job_id(), [&](const v1::JobEvent& e) {
                         events.push_back(e);
                       }));
  EXPECT_EQ(id, 0u);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].state(), v1::QUEUED);
  EXPECT_EQ(events[1].state(), v1::RUNNING);
  for (int e = 0; e < 3; ++e) EXPECT_EQ(events[2 + e].epoch().epoch(), e + 1);
  ASSERT_TRUE(events[5].has_finished());
  EXPECT_EQ(events[5].finished().state(), v1::SUCCEEDED);
  EXPECT_EQ(events[5].finished().epochs_size(), 3);
  EXPECT_THAT(jobs_->Watch("job-999999", [](const v1::JobEvent&) {}),
              StatusIs(absl::StatusCode::kNotFound));

  // Joining while queued: history so far, then the rest live.
  absl::Mutex mu;
  std::vector<v1::JobEvent> live;
  absl::Notification finished;
  ASSERT_OK_AND_ASSIGN(v1::Job second, jobs_->Submit(SmallTrainRequest("watched", 2)));
  ASSERT_OK(jobs_->Watch(second.job_id(), [&](const v1::JobEvent& e) {
                  absl::MutexLock lock(&mu);
                  live.push_back(e);
                  if (e.has_finished()) finished.Notify();
                }).status());
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(live.size(), 5u);
  EXPECT_EQ(live[0].state(), v1::QUEUED);
  EXPECT_EQ(live[1].state(), v1::RUNNING);
  EXPECT_EQ(live[2].epoch().epoch(), 1);
  EXPECT_EQ(live[3].epoch().epoch(), 2);
  EXPECT_EQ(live[4].finished().model_version(), 2);
}

TEST_F(JobManagerTest, JobsSurviveRestartAndInterruptedOnesComeBackFailed) {
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job done, jobs_->Submit(SmallTrainRequest("r", 1)));
  ASSERT_EQ(WaitFor(done.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  StopManager();
  {
    // A crash while a job was running leaves it RUNNING in the database.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> store, SqliteModelStore::Open(path_));
    v1::Job crashed;
    crashed.set_job_id("job-000002");
    crashed.set_model_name("r");
    crashed.set_state(v1::RUNNING);
    ASSERT_OK(store->PutJob(crashed));
  }
  StartManager();
  ASSERT_OK_AND_ASSIGN(v1::Job restored, jobs_->Get(done.job_id()));
  EXPECT_EQ(restored.state(), v1::SUCCEEDED);
  EXPECT_EQ(restored.epochs_size(), 1);
  EXPECT_EQ(restored.model_version(), 1);
  ASSERT_OK_AND_ASSIGN(v1::Job interrupted, jobs_->Get("job-000002"));
  EXPECT_EQ(interrupted.state(), v1::FAILED);
  EXPECT_EQ(interrupted.reason(), "interrupted by restart");
  // New ids continue after the stored ones.
  ASSERT_OK_AND_ASSIGN(v1::Job next, jobs_->Submit(SmallTrainRequest("r", 1)));
  EXPECT_EQ(next.job_id(), "job-000003");
}

// A ModelStore that forwards to another and holds AddVersion until released.
class BlockingAddVersionStore : public ForwardingModelStore {
 public:
  using ForwardingModelStore::ForwardingModelStore;

  absl::Notification entered;  // AddVersion was called
  absl::Notification release;  // lets AddVersion proceed

  absl::StatusOr<int> AddVersion(const v1::ModelVersion& version,
                                 const v1::Job* finished_job) override {
    entered.Notify();
    release.WaitForNotification();
    return ForwardingModelStore::AddVersion(version, finished_job);
  }
};

// Storing a finished job's model (every tensor written to the database) does
// not hold the manager's lock: Get, List and Watch answer meanwhile.
TEST_F(JobManagerTest, StoringTheModelDoesNotBlockQueries) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> sqlite, SqliteModelStore::Open(path_));
  BlockingAddVersionStore store(sqlite.get());
  ModelCatalog catalog(&store);
  DataResolver data("var/data");
  JobManager jobs(&store, &catalog, &data, JobManagerOptions());
  ASSERT_OK(jobs.Start());
  ASSERT_OK_AND_ASSIGN(v1::Job queued, jobs.Submit(SmallTrainRequest("blocking", 1)));
  ASSERT_TRUE(store.entered.WaitForNotificationWithTimeout(absl::Seconds(20)));

  absl::Notification answered;
  v1::JobState state_while_storing = v1::JOB_STATE_UNSPECIFIED;
  std::thread query([&] {
    absl::StatusOr<v1::Job> job = jobs.Get(queued.job_id());
    if (job.ok()) state_while_storing = job->state();
    (void)jobs.List(v1::ListJobsRequest());
    answered.Notify();
  });
  const bool in_time = answered.WaitForNotificationWithTimeout(absl::Seconds(5));
  store.release.Notify();
  query.join();
  EXPECT_TRUE(in_time) << "Get/List waited for the model to be stored";
  EXPECT_EQ(state_while_storing, v1::RUNNING);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::StatusOr<v1::Job> done = jobs.Get(queued.job_id());
  while (done.ok() && done->state() == v1::RUNNING && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    done = jobs.Get(queued.job_id());
  }
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::SUCCEEDED);
  EXPECT_EQ(done->model_version(), 1);
  jobs.Shutdown();
}

// Valid sizes whose product (batch rows x layer widths) would need far more
// memory than the job limit: refused before any allocation, and the server
// accepts a reasonable job afterwards.
TEST_F(JobManagerTest, JobsBeyondTheMemoryLimitAreResourceExhausted) {
  JobManagerOptions options;
  options.max_job_bytes = int64_t{256} << 20;
  StartManager(options);
  v1::TrainRequest r = SmallTrainRequest("wide", 1);
  r.mutable_network()->clear_hidden_sizes();
  for (int i = 0; i < 4; ++i) r.mutable_network()->add_hidden_sizes(4000);
  r.set_batch_size(60000);
  const absl::Status status = jobs_->Submit(r).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("batch_size 60000"));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("256 MiB"));
  ASSERT_OK_AND_ASSIGN(v1::Job queued, jobs_->Submit(SmallTrainRequest("small", 1)));
  EXPECT_EQ(WaitFor(queued.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
}

// The proto's promise: a batch larger than the training set makes the whole
// set one batch. Memory is checked for the batch the trainer really uses: at
// Submit when the data's size is known without reading them (inline rows, a
// built-in split's size or its limit), and again with the data loaded. (A
// batch_size of 1,000,000 on 1,000 images was refused for memory it never
// uses.)
TEST_F(JobManagerTest, ABatchLargerThanTheTrainingSetCountsAsTheWholeSet) {
  JobManagerOptions options;
  options.max_job_bytes = int64_t{64} << 20;
  StartManager(options);
  // Inline: 1,000 rows of 12 features. A million-row batch would need ~1 GB.
  v1::TrainRequest inline_request = SmallTrainRequest("inline-whole-set", 1, 1000);
  inline_request.set_batch_size(1000000);
  ASSERT_OK_AND_ASSIGN(v1::Job inline_job, jobs_->Submit(inline_request));
  EXPECT_EQ(WaitFor(inline_job.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);

  // Built-in: the split's size (8,000) and a limit (1,000) bound the batch.
  v1::TrainRequest builtin = SmallTrainRequest("builtin-whole-set", 1);
  builtin.mutable_network()->set_output_size(10);
  builtin.clear_validation_data();
  builtin.mutable_train_data()->mutable_builtin()->set_name("mnist-digits");
  builtin.set_batch_size(1000000);  // ~3.8 GB as a real batch of 784 features
  ASSERT_OK_AND_ASSIGN(v1::Job whole_split, jobs_->Submit(builtin));
  builtin.mutable_train_data()->mutable_builtin()->set_limit(1000);
  ASSERT_OK_AND_ASSIGN(v1::Job limited, jobs_->Submit(builtin));
  EXPECT_EQ(WaitFor(whole_split.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
  EXPECT_EQ(WaitFor(limited.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);

  // IDX files: the label file's header (8,000) bounds the batch at Submit.
  v1::TrainRequest idx = builtin;
  idx.mutable_train_data()->Clear();
  idx.mutable_train_data()->mutable_idx()->set_images_path(
      "mnist-digits/train-images-idx3-ubyte.gz");
  idx.mutable_train_data()->mutable_idx()->set_labels_path(
      "mnist-digits/train-labels-idx1-ubyte.gz");
  ASSERT_OK_AND_ASSIGN(v1::Job idx_job, jobs_->Submit(idx));
  EXPECT_EQ(WaitFor(idx_job.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);

  // The whole set itself too large: still refused at Submit.
  v1::TrainRequest wide = inline_request;
  wide.mutable_network()->set_hidden_sizes(0, 8000);
  const absl::Status status = jobs_->Submit(wide).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("batch_size 1000000"));

  // Known only once the data are read (the input size comes from the files):
  // about 58 MiB without the 784 inputs, 69 MiB with them. The job fails
  // when it starts, before allocating.
  v1::TrainRequest open_input = builtin;
  open_input.mutable_network()->clear_hidden_sizes();
  open_input.mutable_network()->add_hidden_sizes(450);
  ASSERT_OK_AND_ASSIGN(v1::Job too_big, jobs_->Submit(open_input));
  const v1::Job failed = WaitFor(too_big.job_id(), v1::FAILED);
  EXPECT_EQ(failed.state(), v1::FAILED);
  EXPECT_THAT(failed.reason(), ::testing::HasSubstr("MiB"));
}

TEST_F(JobManagerTest, BadRequestsAreRejectedWithInvalidArgument) {
  StartManager();
  auto expect_invalid = [&](v1::TrainRequest request, const char* what) {
    EXPECT_THAT(jobs_->Submit(request), StatusIs(absl::StatusCode::kInvalidArgument)) << what;
  };
  v1::TrainRequest r = SmallTrainRequest("bad", 1);
  r.set_model_name("no spaces");
  expect_invalid(r, "model name");
  r = SmallTrainRequest("bad", 1);
  r.mutable_optimizer()->set_learning_rate(0);
  expect_invalid(r, "lr 0");
  r = SmallTrainRequest("bad", 1);
  r.mutable_optimizer()->set_learning_rate(-0.1);
  expect_invalid(r, "lr < 0");
  r = SmallTrainRequest("bad", 1);
  r.set_batch_size(-1);
  expect_invalid(r, "negative batch");
  r = SmallTrainRequest("bad", 1);
  r.set_batch_size(1);
  expect_invalid(r, "batch 1 with BN");
  r = SmallTrainRequest("bad", 201);
  expect_invalid(r, "epochs over the maximum");
  r = SmallTrainRequest("bad", 1);
  r.mutable_optimizer()->set_type(static_cast<v1::OptimizerType>(42));
  expect_invalid(r, "unknown optimizer");
  r = SmallTrainRequest("bad", 1);
  r.mutable_network()->set_activation(static_cast<v1::Activation>(42));
  expect_invalid(r, "unknown activation");
  r = SmallTrainRequest("bad", 1);
  r.mutable_network()->clear_hidden_sizes();
  expect_invalid(r, "no hidden layer");
  r = SmallTrainRequest("bad", 1);
  r.clear_train_data();
  expect_invalid(r, "no data");
  r = SmallTrainRequest("bad", 1);
  r.mutable_network()->set_input_size(13);
  expect_invalid(r, "input size vs inline features");
  r = SmallTrainRequest("bad", 1);
  r.mutable_train_data()->mutable_inline_data()->set_labels(0, 7);
  expect_invalid(r, "label out of range");
  r = SmallTrainRequest("bad", 1);
  r.mutable_train_data()->mutable_idx()->set_images_path("../../etc/passwd");
  r.mutable_train_data()->mutable_idx()->set_labels_path("x");
  expect_invalid(r, "path escape");
  // Sizes that would allocate terabytes on the worker (crashing the server)
  // are rejected at Submit.
  r = SmallTrainRequest("bad", 1);
  r.mutable_network()->set_hidden_sizes(0, 1 << 30);
  expect_invalid(r, "huge hidden layer");
  r = SmallTrainRequest("bad", 1);
  r.mutable_network()->set_output_size(1 << 30);
  expect_invalid(r, "huge output layer");
  // Batch size 1 without BatchNorm is fine.
  r = SmallTrainRequest("ok", 1);
  r.set_batch_size(1);
  r.mutable_network()->set_use_batchnorm(false);
  EXPECT_OK(jobs_->Submit(r).status());
}

}  // namespace
}  // namespace bnserve

namespace bnserve {
namespace {

// Only the most recent finished jobs stay in memory; older ones are read from
// the store by Get, List, Watch and Cancel, and after a restart too.
TEST_F(JobManagerTest, FinishedJobsBeyondTheMemoryBoundAreReadFromTheStore) {
  JobManagerOptions options;
  options.max_finished_jobs_in_memory = 2;
  StartManager(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::Job job, jobs_->Submit(SmallTrainRequest("bounded", 1)));
    ASSERT_EQ(WaitFor(job.job_id(), v1::SUCCEEDED).state(), v1::SUCCEEDED);
    ids.push_back(job.job_id());
  }
  for (int round = 0; round < 2; ++round) {
    // The manager holds two finished jobs, the store all five, and Stats
    // (the server's bnserve_jobs gauge) still counts all five.
    const JobStats stats = jobs_->Stats();
    EXPECT_EQ(stats.succeeded, 5);
    EXPECT_EQ(stats.queued + stats.running + stats.failed + stats.cancelled, 0);
    ASSERT_OK_AND_ASSIGN(v1::Job oldest, jobs_->Get(ids[0]));
    EXPECT_EQ(oldest.state(), v1::SUCCEEDED);
    EXPECT_EQ(oldest.epochs_size(), 1);
    EXPECT_EQ(oldest.model_version(), 1);
    EXPECT_THAT(jobs_->Get("job-000099").status(), StatusIs(absl::StatusCode::kNotFound));
    v1::ListJobsRequest list;
    // A page the jobs in memory fill, then one that reaches the store's.
    list.set_page_size(1);
    ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse newest, jobs_->List(list));
    ASSERT_EQ(newest.jobs_size(), 1);
    EXPECT_EQ(newest.jobs(0).job_id(), ids[4]);
    list.set_page_token(newest.next_page_token());
    list.set_page_size(2);
    ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse older, jobs_->List(list));
    ASSERT_EQ(older.jobs_size(), 2);
    EXPECT_EQ(older.jobs(0).job_id(), ids[3]);
    EXPECT_EQ(older.jobs(1).job_id(), ids[2]);
    list.clear_page_token();
    list.set_page_size(3);
    ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse page, jobs_->List(list));
    ASSERT_EQ(page.jobs_size(), 3);
    EXPECT_EQ(page.jobs(0).job_id(), ids[4]);
    EXPECT_EQ(page.jobs(2).job_id(), ids[2]);
    list.set_page_token(page.next_page_token());
    ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse rest, jobs_->List(list));
    ASSERT_EQ(rest.jobs_size(), 2);
    EXPECT_EQ(rest.jobs(1).job_id(), ids[0]);
    EXPECT_TRUE(rest.next_page_token().empty());
    std::vector<v1::JobEvent> events;
    ASSERT_OK_AND_ASSIGN(JobManager::WatchId id,
                         jobs_->Watch(ids[0], [&](const v1::JobEvent& e) { events.push_back(e); }));
    EXPECT_EQ(id, 0u);
    ASSERT_FALSE(events.empty());
    EXPECT_TRUE(events.back().has_finished());
    EXPECT_EQ(events.back().finished().state(), v1::SUCCEEDED);
    EXPECT_EQ(std::count_if(events.begin(), events.end(),
                            [](const v1::JobEvent& e) { return e.has_epoch(); }),
              1);
    EXPECT_THAT(jobs_->Cancel(ids[0]).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    // Ids continue after the oldest ones, which left memory.
    if (round == 0) {
      StopManager();
      StartManager(options);
    }
  }
  ASSERT_OK_AND_ASSIGN(v1::Job next, jobs_->Submit(SmallTrainRequest("bounded", 1)));
  EXPECT_EQ(next.job_id(), "job-000006");
}

// Queued jobs' inline data count against max_queued_data_bytes (running ones
// do not: they left the queue).
TEST_F(JobManagerTest, QueuedInlineDataCountAgainstTheirBudget) {
  const v1::TrainRequest request = SmallTrainRequest("data", 1);
  const int64_t per_job =
      static_cast<int64_t>(request.train_data().inline_data().ByteSizeLong() +
                           request.validation_data().inline_data().ByteSizeLong());
  auto release = std::make_shared<absl::Notification>();
  struct Releaser {
    std::shared_ptr<absl::Notification> n;
    ~Releaser() {
      if (!n->HasBeenNotified()) n->Notify();
    }
  } releaser{release};
  JobManagerOptions options;
  options.max_queued_data_bytes = 2 * per_job + per_job / 2;
  options.on_epoch_finished = [release](const FinishedEpoch&) { release->WaitForNotification(); };
  StartManager(options);
  ASSERT_OK_AND_ASSIGN(v1::Job running, jobs_->Submit(request));
  ASSERT_EQ(WaitFor(running.job_id(), v1::RUNNING).state(), v1::RUNNING);
  ASSERT_OK_AND_ASSIGN(v1::Job second, jobs_->Submit(request));
  ASSERT_OK(jobs_->Submit(request).status());
  EXPECT_THAT(jobs_->Submit(request).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("--max_queued_data_mb")));
  EXPECT_THAT(jobs_->SubmitAll({request}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // A request without inline data does not count.
  v1::TrainRequest from_file = request;
  from_file.mutable_train_data()->mutable_builtin()->set_name("mnist-digits");
  from_file.mutable_train_data()->mutable_builtin()->set_limit(200);
  from_file.clear_validation_data();
  from_file.mutable_network()->set_output_size(10);
  EXPECT_OK(jobs_->Submit(from_file).status());
  // Cancelling a queued job gives its bytes back.
  ASSERT_OK(jobs_->Cancel(second.job_id()).status());
  EXPECT_OK(jobs_->Submit(request).status());
  release->Notify();
}

}  // namespace
}  // namespace bnserve
