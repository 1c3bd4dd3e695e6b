// TrainingServiceImpl: the bnserve.v1.TrainingService on the gRPC callback
// API. A thin layer over the JobManager (jobs) and the SweepManager (sweeps:
// grids of jobs): each handler checks the caller's access, calls the manager
// and converts the result; training itself runs on the job manager's
// workers, never on a gRPC thread.
//
// WatchJob and WatchSweep are ServerWriteReactors: the manager hands each
// event (history first, then live events from the jobs' worker threads) to
// the reactor, which queues it and writes the next one whenever the previous
// write is done, so no gRPC thread ever blocks waiting for a job. A stream
// ends after its last event, when the client cancels, or when the server
// shuts down (which ends every job).
//
// Thread-safety: thread-safe (gRPC calls the handlers concurrently).
#ifndef BNSERVE_SERVER_TRAINING_SERVICE_H_
#define BNSERVE_SERVER_TRAINING_SERVICE_H_

#include "bnserve/v1/training_service.grpc.pb.h"
#include "server/grpc_authorizer.h"
#include "server/job_manager.h"
#include "server/sweep_manager.h"

namespace bnserve {

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  // `jobs` and `sweeps` (whose jobs are `jobs`') must outlive the service.
  // `authorizer` (null: no access control) must outlive the service.
  TrainingServiceImpl(JobManager* jobs, SweepManager* sweeps,
                      const GrpcAuthorizer* authorizer = nullptr)
      : jobs_(jobs), sweeps_(sweeps), authorizer_(authorizer) {}

  grpc::ServerUnaryReactor* Train(grpc::CallbackServerContext* context,
                                  const v1::TrainRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) override;

  grpc::ServerUnaryReactor* StartSweep(grpc::CallbackServerContext* context,
                                       const v1::StartSweepRequest* request,
                                       v1::Sweep* response) override;
  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* context,
                                     const v1::GetSweepRequest* request,
                                     v1::Sweep* response) override;
  grpc::ServerUnaryReactor* ListSweeps(grpc::CallbackServerContext* context,
                                       const v1::ListSweepsRequest* request,
                                       v1::ListSweepsResponse* response) override;
  grpc::ServerUnaryReactor* CancelSweep(grpc::CallbackServerContext* context,
                                        const v1::CancelSweepRequest* request,
                                        v1::Sweep* response) override;
  grpc::ServerWriteReactor<v1::SweepEvent>* WatchSweep(
      grpc::CallbackServerContext* context, const v1::WatchSweepRequest* request) override;

 private:
  JobManager* const jobs_;
  SweepManager* const sweeps_;
  const GrpcAuthorizer* const authorizer_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_TRAINING_SERVICE_H_
