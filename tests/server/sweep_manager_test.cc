#include "server/sweep_manager.h"

#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "server/job_manager.h"
#include "server/model_catalog.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every event a watch delivered, and whether the last one has come.
class Recorder {
 public:
  SweepManager::WatchCallback Callback() {
    return [this](const v1::SweepEvent& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
      if (event.has_finished()) finished_.Notify();
    };
  }
  bool WaitForFinished() { return finished_.WaitForNotificationWithTimeout(absl::Seconds(30)); }
  std::vector<v1::SweepEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::SweepEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::Notification finished_;
};

// A store, catalog, resolver, job manager and sweep manager on one database.
class SweepManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = TempPath("sweeps.db"); }
  void TearDown() override { StopManagers(); }

  void StartManagers(JobManagerOptions job_options = {}, SweepManagerOptions options = {}) {
    job_options.max_epochs = 5000;
    auto store = SqliteModelStore::Open(path_);
    ASSERT_OK(store.status());
    store_ = *std::move(store);
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
    data_ = std::make_unique<DataResolver>("var/data");
    if (shared_) {
      // Two replicas on one shared queue; the sweep manager uses the first.
      job_options.shared_queue = store_.get();
      job_options.poll_interval = absl::Milliseconds(20);
      job_options.lease = absl::Seconds(2);
      JobManagerOptions other_options = job_options;
      job_options.replica_id = "replica-a";
      other_options.replica_id = "replica-b";
      other_catalog_ = std::make_unique<ModelCatalog>(store_.get());
      other_jobs_ = std::make_unique<JobManager>(store_.get(), other_catalog_.get(), data_.get(),
                                                 other_options);
      ASSERT_OK(other_jobs_->Start());
    }
    jobs_ = std::make_unique<JobManager>(store_.get(), catalog_.get(), data_.get(), job_options);
    ASSERT_OK(jobs_->Start());
    if (shared_) {
      // Each replica has its sweep manager, as each server does.
      options.shared_queue = store_.get();
      other_sweeps_ = std::make_unique<SweepManager>(store_.get(), other_jobs_.get(), options);
      ASSERT_OK(other_sweeps_->Start());
    }
    sweeps_ = std::make_unique<SweepManager>(store_.get(), jobs_.get(), options);
    ASSERT_OK(sweeps_->Start());
  }

  void StopManagers() {
    if (jobs_ != nullptr) jobs_->Shutdown("server shutting down");
    if (other_jobs_ != nullptr) other_jobs_->Shutdown("server shutting down");
    sweeps_.reset();
    other_sweeps_.reset();
    jobs_.reset();
    other_jobs_.reset();
    other_catalog_.reset();
    data_.reset();
    catalog_.reset();
    store_.reset();
  }

  // Watches the sweep to its end and returns the final sweep.
  v1::Sweep WatchToEnd(const std::string& sweep_id) {
    Recorder recorder;
    absl::StatusOr<SweepManager::WatchId> id = sweeps_->Watch(sweep_id, recorder.Callback());
    EXPECT_OK(id.status());
    if (!id.ok()) return {};
    EXPECT_TRUE(recorder.WaitForFinished());
    sweeps_->Unwatch(*id);
    std::vector<v1::SweepEvent> events = recorder.events();
    return events.empty() ? v1::Sweep() : events.back().finished();
  }

  // A sweep request on the small synthetic set: the base trains `epochs`.
  static v1::StartSweepRequest SmallSweep(int epochs, std::vector<double> stds,
                                          std::vector<bool> batchnorm) {
    v1::StartSweepRequest request;
    *request.mutable_base() = SmallTrainRequest("grid", epochs);
    request.mutable_base()->mutable_optimizer()->set_type(v1::SGD);
    request.mutable_base()->mutable_optimizer()->set_learning_rate(0.1);
    for (double s : stds) request.add_weight_init_stds(s);
    for (bool b : batchnorm) request.add_use_batchnorm(b);
    return request;
  }

  // A sweep whose jobs run until cancelled (thousands of 2-row batches).
  static v1::StartSweepRequest LongSweep(int points) {
    v1::StartSweepRequest request = SmallSweep(5000, {}, {});
    request.mutable_base()->set_batch_size(2);
    for (int i = 0; i < points; ++i) request.add_weight_init_stds(0.1 / (i + 1));
    return request;
  }

  std::string path_;
  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<DataResolver> data_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<SweepManager> sweeps_;
  // Shared mode: jobs_ and other_jobs_ are two replicas on one queue.
  bool shared_ = false;
  std::unique_ptr<ModelCatalog> other_catalog_;
  std::unique_ptr<JobManager> other_jobs_;
  std::unique_ptr<SweepManager> other_sweeps_;
};

TEST_F(SweepManagerTest, ASweepRunsOverTwoReplicasOfASharedQueue) {
  shared_ = true;
  StartManagers();
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep,
                       sweeps_->StartSweep(SmallSweep(2, {0.5, 0.05}, {true, false})));
  ASSERT_EQ(sweep.points_size(), 4);
  const v1::Sweep done = WatchToEnd(sweep.sweep_id());
  EXPECT_EQ(done.finished_points(), 4);
  std::set<int> versions;
  for (const v1::SweepPoint& point : done.points()) {
    EXPECT_EQ(point.state(), v1::SUCCEEDED) << point.reason();
    EXPECT_EQ(point.epochs_size(), 2);
    versions.insert(point.model_version());
  }
  EXPECT_EQ(versions, (std::set<int>{1, 2, 3, 4}));
  ASSERT_OK_AND_ASSIGN(v1::Sweep table, sweeps_->Get(sweep.sweep_id()));
  EXPECT_EQ(table.finished_points(), 4);
}

TEST_F(SweepManagerTest, ReplicasIssueDistinctSweepIdsAndEachSeesTheOthersSweeps) {
  shared_ = true;
  StartManagers();
  ASSERT_OK_AND_ASSIGN(v1::Sweep on_a, sweeps_->StartSweep(SmallSweep(1, {0.5}, {true})));
  ASSERT_OK_AND_ASSIGN(v1::Sweep on_b, other_sweeps_->StartSweep(SmallSweep(1, {0.5}, {true})));
  ASSERT_OK_AND_ASSIGN(v1::Sweep again_a, sweeps_->StartSweep(SmallSweep(1, {0.5}, {true})));
  const std::set<std::string> ids = {on_a.sweep_id(), on_b.sweep_id(), again_a.sweep_id()};
  EXPECT_EQ(ids.size(), 3u) << on_a.sweep_id() << " " << on_b.sweep_id() << " "
                            << again_a.sweep_id();
  // Each replica's manager answers for the other's sweep, and lists all three.
  ASSERT_OK_AND_ASSIGN(v1::Sweep b_seen_on_a, sweeps_->Get(on_b.sweep_id()));
  EXPECT_EQ(b_seen_on_a.points(0).job_id(), on_b.points(0).job_id());
  ASSERT_OK_AND_ASSIGN(v1::Sweep a_seen_on_b, other_sweeps_->Get(again_a.sweep_id()));
  EXPECT_EQ(a_seen_on_b.points(0).job_id(), again_a.points(0).job_id());
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse listed, other_sweeps_->List({}));
  std::set<std::string> listed_ids;
  for (const v1::Sweep& sweep : listed.sweeps()) listed_ids.insert(sweep.sweep_id());
  EXPECT_EQ(listed_ids, ids);
  EXPECT_EQ(WatchToEnd(on_b.sweep_id()).finished_points(), 1) << "watched from the other replica";
  EXPECT_THAT(sweeps_->Get("sweep-999999").status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SweepManagerTest, CancellingASweepStopsItsJobsOnEveryReplica) {
  shared_ = true;
  StartManagers();
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->StartSweep(LongSweep(3)));
  Recorder recorder;
  ASSERT_OK_AND_ASSIGN(SweepManager::WatchId id,
                       sweeps_->Watch(sweep.sweep_id(), recorder.Callback()));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (jobs_->Stats().running + other_jobs_->Stats().running != 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_OK(sweeps_->Cancel(sweep.sweep_id()).status());
  ASSERT_TRUE(recorder.WaitForFinished());
  sweeps_->Unwatch(id);
  const std::vector<v1::SweepEvent> events = recorder.events();
  const v1::Sweep& done = events.back().finished();
  EXPECT_EQ(done.finished_points(), 3);
  for (const v1::SweepPoint& point : done.points()) {
    EXPECT_EQ(point.state(), v1::CANCELLED);
    EXPECT_EQ(point.reason(), "cancelled by request");
  }
}

TEST_F(SweepManagerTest, TheGridIsTheProductInOrderAndEveryPointRegistersAVersion) {
  StartManagers();
  v1::StartSweepRequest request = SmallSweep(1, {0.5, 0.05}, {true, false});
  request.add_learning_rates(0.1);
  request.add_learning_rates(0.01);
  request.mutable_base()->set_description("figure 6-18");
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->StartSweep(request, "alice"));
  EXPECT_EQ(sweep.sweep_id(), "sweep-000001");
  EXPECT_EQ(sweep.created_by(), "alice");
  ASSERT_EQ(sweep.points_size(), 8);
  // weight_init_stds outermost, then use_batchnorm, then learning_rates.
  const double stds[] = {0.5, 0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.05};
  const bool bns[] = {true, true, false, false, true, true, false, false};
  const double rates[] = {0.1, 0.01, 0.1, 0.01, 0.1, 0.01, 0.1, 0.01};
  for (int i = 0; i < 8; ++i) {
    const v1::SweepPoint& point = sweep.points(i);
    EXPECT_EQ(point.weight_init_std(), stds[i]) << i;
    EXPECT_EQ(point.use_batchnorm(), bns[i]) << i;
    EXPECT_EQ(point.learning_rate(), rates[i]) << i;
    EXPECT_EQ(point.state(), v1::QUEUED) << i;
    ASSERT_OK_AND_ASSIGN(v1::Job job, jobs_->Get(point.job_id()));
    EXPECT_EQ(job.created_by(), "alice");
    EXPECT_EQ(job.request().network().weight_init().kind(), v1::WeightInit::STD);
    EXPECT_EQ(job.request().network().weight_init().std(), stds[i]);
    EXPECT_EQ(job.request().network().use_batchnorm(), bns[i]);
    EXPECT_EQ(job.request().optimizer().learning_rate(), rates[i]);
    EXPECT_THAT(job.request().description(),
                ::testing::StartsWith(absl::StrCat("sweep-000001 point ", i, "/8 (")));
    EXPECT_THAT(job.request().description(), HasSubstr("figure 6-18"));
  }
  // The stored request keeps the inline data's shape only.
  EXPECT_EQ(sweep.request().base().train_data().inline_data().features().values_size(), 0);
  EXPECT_THAT(sweep.request().base().train_data().inline_data().features().shape(),
              ElementsAre(200, 12));

  const v1::Sweep done = WatchToEnd(sweep.sweep_id());
  EXPECT_EQ(done.finished_points(), 8);
  std::set<int> versions;
  for (const v1::SweepPoint& point : done.points()) {
    EXPECT_EQ(point.state(), v1::SUCCEEDED) << point.reason();
    EXPECT_EQ(point.epochs_size(), 1);
    versions.insert(point.model_version());
  }
  EXPECT_EQ(versions, (std::set<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  // Each version says which point it is.
  v1::ModelRef ref;
  ref.set_name("grid");
  ref.set_version(done.points(5).model_version());
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion version, catalog_->Get(ref, false));
  EXPECT_THAT(version.training().description(), HasSubstr("sweep-000001 point 5/8"));
  // GetSweep builds the same table from the jobs.
  ASSERT_OK_AND_ASSIGN(v1::Sweep table, sweeps_->Get(sweep.sweep_id()));
  EXPECT_EQ(table.finished_points(), 8);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(table.points(i).model_version(), done.points(i).model_version());
    EXPECT_EQ(table.points(i).epochs(0).train_accuracy(),
              done.points(i).epochs(0).train_accuracy());
  }
}

TEST_F(SweepManagerTest, EmptyAxesTakeTheBasesValues) {
  StartManagers();
  v1::StartSweepRequest request = SmallSweep(1, {}, {false});
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->StartSweep(request));
  ASSERT_EQ(sweep.points_size(), 1);
  EXPECT_EQ(sweep.points(0).weight_init_std(), 0);  // the base's He init is no std
  EXPECT_FALSE(sweep.points(0).use_batchnorm());
  EXPECT_EQ(sweep.points(0).learning_rate(), 0.1);
  ASSERT_OK_AND_ASSIGN(v1::Job job, jobs_->Get(sweep.points(0).job_id()));
  EXPECT_NE(job.request().network().weight_init().kind(), v1::WeightInit::STD);
}

TEST_F(SweepManagerTest, BadValuesAndTooManyPointsAreRefusedAndNothingIsSubmitted) {
  SweepManagerOptions options;
  options.max_points = 4;
  StartManagers({}, options);
  EXPECT_THAT(sweeps_->StartSweep(SmallSweep(1, {0.1, -0.1}, {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_init_stds[1]")));
  v1::StartSweepRequest nan_rate = SmallSweep(1, {0.1}, {});
  nan_rate.add_learning_rates(std::nan(""));
  EXPECT_THAT(sweeps_->StartSweep(nan_rate),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("learning_rates[0]")));
  EXPECT_THAT(sweeps_->StartSweep(SmallSweep(1, {1, 0.1, 0.01}, {true, false})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("6 points")));
  // A point Train would refuse: the same check, naming the point.
  v1::StartSweepRequest bad_base = SmallSweep(1, {0.1, 0.01}, {});
  bad_base.mutable_base()->set_epochs(-1);
  EXPECT_THAT(sweeps_->StartSweep(bad_base),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::StartsWith("sweep-000001 point 0/2 (weight_init_std 0.1")));
  v1::StartSweepRequest no_data = SmallSweep(1, {0.1}, {});
  no_data.mutable_base()->clear_train_data();
  EXPECT_THAT(sweeps_->StartSweep(no_data), StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse jobs, jobs_->List(v1::ListJobsRequest()));
  EXPECT_EQ(jobs.jobs_size(), 0);
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse sweeps, sweeps_->List(v1::ListSweepsRequest()));
  EXPECT_EQ(sweeps.sweeps_size(), 0);
  // The refused sweeps took no id.
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->StartSweep(SmallSweep(1, {0.1}, {})));
  EXPECT_EQ(sweep.sweep_id(), "sweep-000001");
}

TEST_F(SweepManagerTest, ASweepTheQueueCannotTakeWhollyIsRefusedWhole) {
  JobManagerOptions job_options;
  job_options.max_queue = 3;
  StartManagers(job_options);
  ASSERT_OK_AND_ASSIGN(v1::Sweep blocker, sweeps_->StartSweep(LongSweep(1)));
  // Wait until the worker holds it: the queue is empty again.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (jobs_->Stats().running != 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(jobs_->Stats().running, 1);
  EXPECT_THAT(sweeps_->StartSweep(SmallSweep(1, {1, 0.1}, {true, false})),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("nothing was submitted")));
  EXPECT_EQ(jobs_->Stats().queued, 0);
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse sweeps, sweeps_->List(v1::ListSweepsRequest()));
  EXPECT_EQ(sweeps.sweeps_size(), 1);
  ASSERT_OK_AND_ASSIGN(v1::Sweep fits, sweeps_->StartSweep(SmallSweep(1, {1, 0.1, 0.01}, {})));
  EXPECT_EQ(fits.sweep_id(), "sweep-000002");
  EXPECT_EQ(jobs_->Stats().queued, 3);
}

TEST_F(SweepManagerTest, CancelStopsEveryUnfinishedJobAndTheWatchEnds) {
  JobManagerOptions job_options;
  job_options.workers = 1;
  StartManagers(job_options);
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->StartSweep(LongSweep(3)));
  Recorder recorder;
  ASSERT_OK_AND_ASSIGN(SweepManager::WatchId id,
                       sweeps_->Watch(sweep.sweep_id(), recorder.Callback()));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (jobs_->Stats().running != 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_OK_AND_ASSIGN(v1::Sweep cancelled, sweeps_->Cancel(sweep.sweep_id()));
  // The queued ones at once; the running one within an iteration.
  EXPECT_EQ(cancelled.points(1).state(), v1::CANCELLED);
  EXPECT_EQ(cancelled.points(2).state(), v1::CANCELLED);
  ASSERT_TRUE(recorder.WaitForFinished());
  sweeps_->Unwatch(id);
  const std::vector<v1::SweepEvent> events = recorder.events();
  const v1::Sweep& done = events.back().finished();
  EXPECT_EQ(done.finished_points(), 3);
  for (const v1::SweepPoint& point : done.points()) {
    EXPECT_EQ(point.state(), v1::CANCELLED);
    EXPECT_EQ(point.reason(), "cancelled by request");
  }
  // Each job's own events end with its `finished`, tagged with its point.
  for (int point = 0; point < 3; ++point) {
    std::vector<v1::SweepEvent> of_point;
    for (const v1::SweepEvent& event : events) {
      if (!event.has_finished() && event.point() == point) of_point.push_back(event);
    }
    ASSERT_FALSE(of_point.empty());
    EXPECT_EQ(of_point.front().job_event().state(), v1::QUEUED);
    EXPECT_TRUE(of_point.back().job_event().has_finished());
    EXPECT_EQ(of_point.back().job_id(), sweep.points(point).job_id());
  }
  // Cancelling a finished sweep changes nothing.
  ASSERT_OK_AND_ASSIGN(v1::Sweep again, sweeps_->Cancel(sweep.sweep_id()));
  EXPECT_EQ(again.finished_points(), 3);
}

TEST_F(SweepManagerTest, ALateWatchGetsEveryHistoryThenTheEndAtOnce) {
  StartManagers();
  ASSERT_OK_AND_ASSIGN(v1::Sweep sweep, sweeps_->StartSweep(SmallSweep(2, {0.5, 0.05}, {})));
  WatchToEnd(sweep.sweep_id());
  Recorder late;
  ASSERT_OK_AND_ASSIGN(SweepManager::WatchId id, sweeps_->Watch(sweep.sweep_id(), late.Callback()));
  // Delivered within Watch: point 0's history, point 1's, then the sweep.
  const std::vector<v1::SweepEvent> events = late.events();
  sweeps_->Unwatch(id);
  ASSERT_EQ(events.size(), 2u * 5 + 1);  // QUEUED, RUNNING, 2 epochs, finished
  for (int i = 0; i < 10; ++i) EXPECT_EQ(events[i].point(), i / 5) << i;
  EXPECT_EQ(events[0].job_event().state(), v1::QUEUED);
  EXPECT_EQ(events[2].job_event().epoch().epoch(), 1);
  EXPECT_TRUE(events[9].job_event().has_finished());
  ASSERT_TRUE(events[10].has_finished());
  EXPECT_EQ(events[10].finished().finished_points(), 2);
  EXPECT_EQ(events[10].finished().points(1).state(), v1::SUCCEEDED);
}

TEST_F(SweepManagerTest, UnknownSweepsAreNotFound) {
  StartManagers();
  EXPECT_THAT(sweeps_->Get("sweep-000009"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(sweeps_->Cancel("sweep-000009"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(sweeps_->Watch("nope", [](const v1::SweepEvent&) {}),
              StatusIs(absl::StatusCode::kNotFound));
  v1::ListSweepsRequest bad;
  bad.set_page_token("x");
  EXPECT_THAT(sweeps_->List(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  sweeps_->Unwatch(12345);  // ignored
}

TEST_F(SweepManagerTest, ARestartKeepsSweepsWithTheirJobsStates) {
  StartManagers();
  ASSERT_OK_AND_ASSIGN(v1::Sweep finished, sweeps_->StartSweep(SmallSweep(1, {0.5}, {})));
  WatchToEnd(finished.sweep_id());
  ASSERT_OK_AND_ASSIGN(v1::Sweep interrupted, sweeps_->StartSweep(LongSweep(2), "bob"));
  StopManagers();  // shutdown cancels the long sweep's jobs

  StartManagers();
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse list, sweeps_->List(v1::ListSweepsRequest()));
  ASSERT_EQ(list.sweeps_size(), 2);
  EXPECT_EQ(list.sweeps(0).sweep_id(), interrupted.sweep_id());  // newest first
  EXPECT_EQ(list.sweeps(1).sweep_id(), finished.sweep_id());
  const v1::Sweep& kept = list.sweeps(0);
  EXPECT_EQ(kept.created_by(), "bob");
  EXPECT_EQ(kept.finished_points(), 2);
  EXPECT_EQ(kept.request().weight_init_stds_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(kept.points(i).job_id(), interrupted.points(i).job_id());
    EXPECT_EQ(kept.points(i).state(), v1::CANCELLED);
    EXPECT_EQ(kept.points(i).reason(), "server shutting down");
  }
  EXPECT_EQ(list.sweeps(1).points(0).state(), v1::SUCCEEDED);
  EXPECT_EQ(list.sweeps(1).points(0).model_version(), 1);
  // Paged, and the next sweep takes the next id.
  v1::ListSweepsRequest one;
  one.set_page_size(1);
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse page1, sweeps_->List(one));
  ASSERT_EQ(page1.sweeps_size(), 1);
  one.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(v1::ListSweepsResponse page2, sweeps_->List(one));
  ASSERT_EQ(page2.sweeps_size(), 1);
  EXPECT_EQ(page2.sweeps(0).sweep_id(), finished.sweep_id());
  EXPECT_EQ(page2.next_page_token(), "");
  ASSERT_OK_AND_ASSIGN(v1::Sweep next, sweeps_->StartSweep(SmallSweep(1, {0.5}, {})));
  EXPECT_EQ(next.sweep_id(), "sweep-000003");
  // A watch of the restored sweep ends at once.
  EXPECT_EQ(WatchToEnd(interrupted.sweep_id()).finished_points(), 2);
}

}  // namespace
}  // namespace bnserve
