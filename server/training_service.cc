#include "server/training_service.h"

#include <deque>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/grpc_status_util.h"

namespace bnserve {
namespace {

// A WatchJob refused before it starts: finishes with `status` at once.
class RefusedWatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  explicit RefusedWatchReactor(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// Streams one job's events. Created by WatchJob; deletes itself in OnDone.
class WatchJobReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchJobReactor(JobManager* jobs, std::string job_id)
      : jobs_(jobs), job_id_(std::move(job_id)) {
    absl::StatusOr<JobManager::WatchId> id =
        jobs_->Watch(job_id_, [this](const v1::JobEvent& event) { Enqueue(event); });
    absl::MutexLock lock(&mu_);
    if (!id.ok()) {
      done_ = true;
      Finish(ToGrpcStatus(id.status()));
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
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch stream closed"));
      }
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (!done_ && !writing_) {
      done_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    }
    // With a write in flight, OnWriteDone(false) follows and finishes.
  }

  void OnDone() override {
    // After Unwatch no Enqueue runs or will run; taking the lock once waits
    // for a thread that called Finish under it to let go before deleting.
    if (watch_id_ != 0) jobs_->Unwatch(job_id_, watch_id_);
    { absl::MutexLock lock(&mu_); }
    delete this;
  }

 private:
  // Called by the JobManager (under its lock) for every event, in order.
  void Enqueue(const v1::JobEvent& event) {
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
        Finish(grpc::Status::OK);
      }
      return;
    }
    current_ = std::move(pending_.front());
    pending_.pop_front();
    sent_final_ = current_.has_finished();
    writing_ = true;
    StartWrite(&current_);
  }

  JobManager* const jobs_;
  const std::string job_id_;
  JobManager::WatchId watch_id_ = 0;  // set once in the constructor

  absl::Mutex mu_;
  std::deque<v1::JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  v1::JobEvent current_ ABSL_GUARDED_BY(mu_);  // the message being written
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
    return new RefusedWatchReactor(allowed);
  }
  return new WatchJobReactor(jobs_, request->job_id());
}

}  // namespace bnserve
