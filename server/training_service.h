// TrainingServiceImpl: the bnserve.v1.TrainingService on the gRPC callback
// API. A thin layer over the JobManager: each handler validates, calls it and
// converts the result; training itself runs on the manager's workers, never
// on a gRPC thread.
//
// WatchJob is a ServerWriteReactor: the JobManager hands each event (history
// first, then live events from the job's worker thread) to the reactor, which
// queues it and writes the next one whenever the previous write is done, so
// no gRPC thread ever blocks waiting for a job.
//
// Thread-safety: thread-safe (gRPC calls the handlers concurrently).
#ifndef BNSERVE_SERVER_TRAINING_SERVICE_H_
#define BNSERVE_SERVER_TRAINING_SERVICE_H_

#include "bnserve/v1/training_service.grpc.pb.h"
#include "server/grpc_authorizer.h"
#include "server/job_manager.h"

namespace bnserve {

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  // `jobs` must outlive the service.
  // `authorizer` (null: no access control) must outlive the service.
  explicit TrainingServiceImpl(JobManager* jobs, const GrpcAuthorizer* authorizer = nullptr)
      : jobs_(jobs), authorizer_(authorizer) {}

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

 private:
  JobManager* const jobs_;
  const GrpcAuthorizer* const authorizer_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_TRAINING_SERVICE_H_
