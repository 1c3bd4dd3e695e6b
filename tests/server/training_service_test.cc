// The TrainingService's sweep RPCs through real gRPC stubs on an assembled
// server (in-process channel): StartSweep, GetSweep, ListSweeps, CancelSweep
// and WatchSweep streams that end with the whole sweep, when the client
// cancels, and when the server shuts down.
#include "server/training_service.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::TempPath;

class TrainingServiceSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BnserveServerOptions options;
    options.listen = "";  // in-process only
    options.registry_path = TempPath("server.db");
    options.data_dir = "var/data";
    options.max_epochs = 5000;
    options.workers = 2;
    options.max_sweep_points = 8;
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_OK(server.status());
    server_ = *std::move(server);
    training_ = v1::TrainingService::NewStub(server_->InProcessChannel());
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return context;
  }

  // BatchNorm on and off at each of `stds`, `epochs` each.
  static v1::StartSweepRequest Grid(int epochs, std::vector<double> stds) {
    v1::StartSweepRequest request;
    *request.mutable_base() = SmallTrainRequest("grid", epochs);
    for (double s : stds) request.add_weight_init_stds(s);
    request.add_use_batchnorm(true);
    request.add_use_batchnorm(false);
    request.set_description("two scales");
    return request;
  }

  // Reads a WatchSweep stream to its end; returns the events and the status.
  grpc::Status ReadAll(grpc::ClientReader<v1::SweepEvent>* reader,
                       std::vector<v1::SweepEvent>* events) {
    v1::SweepEvent event;
    while (reader->Read(&event)) events->push_back(event);
    return reader->Finish();
  }

  v1::Sweep Start(const v1::StartSweepRequest& request) {
    v1::Sweep sweep;
    grpc::Status status = training_->StartSweep(Context().get(), request, &sweep);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return sweep;
  }

  std::unique_ptr<BnserveServer> server_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
};

TEST_F(TrainingServiceSweepTest, StartWatchGetAndListASweep) {
  const v1::Sweep started = Start(Grid(2, {0.5, 0.05}));
  ASSERT_EQ(started.points_size(), 4);
  EXPECT_EQ(started.created_by(), "anonymous");  // the caller, as Train records it
  EXPECT_EQ(started.request().description(), "two scales");

  v1::WatchSweepRequest watch;
  watch.set_sweep_id(started.sweep_id());
  auto context = Context();
  std::vector<v1::SweepEvent> events;
  ASSERT_TRUE(ReadAll(training_->WatchSweep(context.get(), watch).get(), &events).ok());
  // Per point QUEUED, RUNNING, 2 epochs, finished; then the sweep.
  ASSERT_EQ(events.size(), 4u * 5 + 1);
  ASSERT_TRUE(events.back().has_finished());
  const v1::Sweep& done = events.back().finished();
  EXPECT_EQ(done.finished_points(), 4);
  std::vector<int> finished_per_point(4, 0);
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const v1::SweepEvent& event = events[i];
    ASSERT_GE(event.point(), 0);
    ASSERT_LT(event.point(), 4);
    EXPECT_EQ(event.job_id(), started.points(event.point()).job_id());
    EXPECT_FALSE(event.has_finished());
    if (event.job_event().has_finished()) ++finished_per_point[event.point()];
  }
  EXPECT_THAT(finished_per_point, ::testing::Each(1));

  v1::GetSweepRequest get;
  get.set_sweep_id(started.sweep_id());
  v1::Sweep table;
  ASSERT_TRUE(training_->GetSweep(Context().get(), get, &table).ok());
  EXPECT_EQ(table.finished_points(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(table.points(i).state(), v1::SUCCEEDED);
    EXPECT_EQ(table.points(i).epochs_size(), 2);
    EXPECT_GT(table.points(i).model_version(), 0);
    EXPECT_EQ(table.points(i).model_version(), done.points(i).model_version());
  }
  EXPECT_EQ(table.points(0).weight_init_std(), 0.5);
  EXPECT_TRUE(table.points(0).use_batchnorm());
  EXPECT_FALSE(table.points(1).use_batchnorm());
  EXPECT_EQ(table.points(3).weight_init_std(), 0.05);

  const v1::Sweep second = Start(Grid(1, {0.1}));
  v1::ListSweepsRequest list;
  v1::ListSweepsResponse sweeps;
  ASSERT_TRUE(training_->ListSweeps(Context().get(), list, &sweeps).ok());
  ASSERT_EQ(sweeps.sweeps_size(), 2);
  EXPECT_EQ(sweeps.sweeps(0).sweep_id(), second.sweep_id());
  EXPECT_EQ(sweeps.sweeps(1).sweep_id(), started.sweep_id());
  EXPECT_EQ(sweeps.sweeps(1).finished_points(), 4);
}

TEST_F(TrainingServiceSweepTest, ErrorsHaveTheirCodes) {
  v1::Sweep sweep;
  v1::GetSweepRequest get;
  get.set_sweep_id("sweep-424242");
  EXPECT_EQ(training_->GetSweep(Context().get(), get, &sweep).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id("sweep-424242");
  EXPECT_EQ(training_->CancelSweep(Context().get(), cancel, &sweep).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::WatchSweepRequest watch;
  watch.set_sweep_id("sweep-424242");
  auto context = Context();
  std::vector<v1::SweepEvent> events;
  EXPECT_EQ(ReadAll(training_->WatchSweep(context.get(), watch).get(), &events).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(events.empty());
  // Nine points: more than this server's maximum of eight.
  EXPECT_EQ(training_->StartSweep(Context().get(), Grid(1, {1, 0.5, 0.25, 0.1, 0.05}), &sweep)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::StartSweepRequest zero = Grid(1, {0.0});
  EXPECT_EQ(training_->StartSweep(Context().get(), zero, &sweep).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListSweepsRequest list;
  list.set_page_size(-1);
  v1::ListSweepsResponse sweeps;
  EXPECT_EQ(training_->ListSweeps(Context().get(), list, &sweeps).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Jobs that only end by cancellation or shutdown.
v1::StartSweepRequest LongGrid() {
  v1::StartSweepRequest request;
  *request.mutable_base() = SmallTrainRequest("long", 5000);
  request.mutable_base()->set_batch_size(2);
  request.add_weight_init_stds(0.1);
  request.add_weight_init_stds(0.01);
  request.add_use_batchnorm(true);
  request.add_use_batchnorm(false);
  return request;
}

TEST_F(TrainingServiceSweepTest, CancelSweepEndsTheWatchWithTheCancelledSweep) {
  const v1::Sweep started = Start(LongGrid());
  v1::WatchSweepRequest watch;
  watch.set_sweep_id(started.sweep_id());
  auto context = Context();
  auto reader = training_->WatchSweep(context.get(), watch);
  v1::SweepEvent event;
  // Wait for an epoch: two jobs are running then.
  while (reader->Read(&event) && !event.job_event().has_epoch()) {
  }
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id(started.sweep_id());
  v1::Sweep cancelled;
  ASSERT_TRUE(training_->CancelSweep(Context().get(), cancel, &cancelled).ok());
  std::vector<v1::SweepEvent> rest;
  ASSERT_TRUE(ReadAll(reader.get(), &rest).ok());
  ASSERT_FALSE(rest.empty());
  ASSERT_TRUE(rest.back().has_finished());
  EXPECT_EQ(rest.back().finished().finished_points(), 4);
  for (const v1::SweepPoint& point : rest.back().finished().points()) {
    EXPECT_EQ(point.state(), v1::CANCELLED);
  }
}

TEST_F(TrainingServiceSweepTest, AWatchEndsWhenTheClientCancelsAndTheServerServesOn) {
  const v1::Sweep started = Start(LongGrid());
  v1::WatchSweepRequest watch;
  watch.set_sweep_id(started.sweep_id());
  auto context = Context();
  auto reader = training_->WatchSweep(context.get(), watch);
  v1::SweepEvent event;
  ASSERT_TRUE(reader->Read(&event));
  context->TryCancel();
  std::vector<v1::SweepEvent> rest;
  EXPECT_EQ(ReadAll(reader.get(), &rest).error_code(), grpc::StatusCode::CANCELLED);
  v1::GetSweepRequest get;
  get.set_sweep_id(started.sweep_id());
  v1::Sweep sweep;
  ASSERT_TRUE(training_->GetSweep(Context().get(), get, &sweep).ok());
  EXPECT_EQ(sweep.finished_points(), 0);
}

TEST_F(TrainingServiceSweepTest, AWatchEndsWhenTheServerShutsDown) {
  const v1::Sweep started = Start(LongGrid());
  v1::WatchSweepRequest watch;
  watch.set_sweep_id(started.sweep_id());
  auto context = Context();
  auto reader = training_->WatchSweep(context.get(), watch);
  v1::SweepEvent event;
  ASSERT_TRUE(reader->Read(&event));
  std::thread stopper([this] { server_->Shutdown(absl::Seconds(5)); });
  const absl::Time start = absl::Now();
  std::vector<v1::SweepEvent> rest;
  grpc::Status status = ReadAll(reader.get(), &rest);
  stopper.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  // Shutdown ends every job before it stops the gRPC server, so the stream
  // ends with the cancelled sweep, unless the server's own shutdown closes
  // the transport first (in-process, it often does: UNAVAILABLE).
  if (status.ok()) {
    ASSERT_FALSE(rest.empty());
    ASSERT_TRUE(rest.back().has_finished());
    for (const v1::SweepPoint& point : rest.back().finished().points()) {
      EXPECT_EQ(point.state(), v1::CANCELLED);
      EXPECT_EQ(point.reason(), "server shutting down");
    }
  } else {
    EXPECT_THAT(status.error_code(), ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE,
                                                      grpc::StatusCode::CANCELLED))
        << status.error_message();
  }
}

}  // namespace
}  // namespace bnserve
