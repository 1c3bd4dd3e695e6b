#include "server/training_service.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/grpc_status_util.h"

namespace bnserve {
namespace {

// A watch refused before it starts: finishes with `status` at once.
template <typename Event>
class RefusedWatchReactor final : public grpc::ServerWriteReactor<Event> {
 public:
  explicit RefusedWatchReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// Streams the events of one watch (WatchJob: JobEvents of a job; WatchSweep:
// SweepEvents of a sweep) until the one that has_finished(). Created by the
// handler; deletes itself in OnDone. `subscribe` registers the reactor's
// callback with the manager and returns the watch id (0: nothing to
// unsubscribe); `unsubscribe` removes it, after which the callback never
// runs again (JobManager::Unwatch, SweepManager::Unwatch).
template <typename Event>
class WatchReactor final : public grpc::ServerWriteReactor<Event> {
 public:
  using Callback = std::function<void(const Event&)>;
  using Subscribe = std::function<absl::StatusOr<uint64_t>(Callback)>;
  using Unsubscribe = std::function<void(uint64_t)>;

  WatchReactor(const Subscribe& subscribe, Unsubscribe unsubscribe)
      : unsubscribe_(std::move(unsubscribe)) {
    absl::StatusOr<uint64_t> id = subscribe([this](const Event& event) { Enqueue(event); });
    absl::MutexLock lock(&mu_);
    if (!id.ok()) {
      done_ = true;
      this->Finish(ToGrpcStatus(id.status()));
      return;
    }
    watch_id_ = *id;
    // Writing starts only now, after watch_id_ is set: OnDone (which may
    // follow the last write at once) must find it.
    started_ = true;
    WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {  // the client went away or the server is shutting down
      if (!done_) {
        done_ = true;
        this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch stream closed"));
      }
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (!done_ && !writing_) {
      done_ = true;
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    }
    // With a write in flight, OnWriteDone(false) follows and finishes.
  }

  void OnDone() override {
    // After unsubscribing no Enqueue runs or will run; taking the lock once
    // waits for a thread that called Finish under it to let go before
    // deleting.
    if (watch_id_ != 0) unsubscribe_(watch_id_);
    { absl::MutexLock lock(&mu_); }
    delete this;
  }

 private:
  // Called by the manager (under its lock) for every event, in order.
  void Enqueue(const Event& event) {
    absl::MutexLock lock(&mu_);
    if (done_) return;
    pending_.push_back(event);
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!started_ || writing_ || done_) return;
    if (pending_.empty()) {
      if (sent_final_) {
        done_ = true;
        this->Finish(grpc::Status::OK);
      }
      return;
    }
    current_ = std::move(pending_.front());
    pending_.pop_front();
    sent_final_ = current_.has_finished();
    writing_ = true;
    this->StartWrite(&current_);
  }

  const Unsubscribe unsubscribe_;
  uint64_t watch_id_ = 0;  // set once in the constructor

  absl::Mutex mu_;
  std::deque<Event> pending_ ABSL_GUARDED_BY(mu_);
  Event current_ ABSL_GUARDED_BY(mu_);  // the message being written
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_final_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // Finish called
};

}  // namespace

grpc::ServerUnaryReactor* TrainingServiceImpl::Train(grpc::CallbackServerContext* context,
                                                     const v1::TrainRequest* request,
                                                     v1::Job* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/Train");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, jobs_->Submit(*request, CallerNameOf(authorizer_, *context)),
                     response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const v1::GetJobRequest* request,
                                                      v1::Job* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/GetJob");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, jobs_->Get(request->job_id()), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/ListJobs");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, jobs_->List(*request), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const v1::CancelJobRequest* request,
                                                         v1::Job* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/CancelJob");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, jobs_->Cancel(request->job_id()), response);
}

grpc::ServerWriteReactor<v1::JobEvent>* TrainingServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/WatchJob");
      !allowed.ok()) {
    return new RefusedWatchReactor<v1::JobEvent>(allowed);
  }
  JobManager* jobs = jobs_;
  const std::string job_id = request->job_id();
  return new WatchReactor<v1::JobEvent>(
      [jobs, job_id](WatchReactor<v1::JobEvent>::Callback callback) {
        return jobs->Watch(job_id, std::move(callback));
      },
      [jobs, job_id](uint64_t id) { jobs->Unwatch(job_id, id); });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::StartSweep(
    grpc::CallbackServerContext* context, const v1::StartSweepRequest* request,
    v1::Sweep* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/StartSweep");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context,
                     sweeps_->StartSweep(*request, CallerNameOf(authorizer_, *context)),
                     response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetSweep(grpc::CallbackServerContext* context,
                                                        const v1::GetSweepRequest* request,
                                                        v1::Sweep* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/GetSweep");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, sweeps_->Get(request->sweep_id()), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListSweeps(
    grpc::CallbackServerContext* context, const v1::ListSweepsRequest* request,
    v1::ListSweepsResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/ListSweeps");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, sweeps_->List(*request), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelSweep(
    grpc::CallbackServerContext* context, const v1::CancelSweepRequest* request,
    v1::Sweep* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/CancelSweep");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, sweeps_->Cancel(request->sweep_id()), response);
}

grpc::ServerWriteReactor<v1::SweepEvent>* TrainingServiceImpl::WatchSweep(
    grpc::CallbackServerContext* context, const v1::WatchSweepRequest* request) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/bnserve.v1.TrainingService/WatchSweep");
      !allowed.ok()) {
    return new RefusedWatchReactor<v1::SweepEvent>(allowed);
  }
  SweepManager* sweeps = sweeps_;
  const std::string sweep_id = request->sweep_id();
  return new WatchReactor<v1::SweepEvent>(
      [sweeps, sweep_id](WatchReactor<v1::SweepEvent>::Callback callback) {
        return sweeps->Watch(sweep_id, std::move(callback));
      },
      [sweeps](uint64_t id) { sweeps->Unwatch(id); });
}

}  // namespace bnserve
