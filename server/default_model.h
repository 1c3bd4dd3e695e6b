// The default model: the book's seed network, trained once on the built-in
// mnist-digits data the first time a server starts with --default_model, so
// that a fresh `make run` can answer Predict without a manual training step.
//
//   RETURN_IF_ERROR(EnsureDefaultModel("digits", &jobs));
//
// Stateless functions; thread-safe as far as the JobManager they use is.
#ifndef BNSERVE_SERVER_DEFAULT_MODEL_H_
#define BNSERVE_SERVER_DEFAULT_MODEL_H_

#include <string>

#include "absl/status/status.h"
#include "bnserve/v1/training_service.pb.h"
#include "server/job_manager.h"

namespace bnserve {

// 784-100x5-10, ReLU, He init, BatchNorm, SGD lr 0.01, batch 100, 20 epochs,
// seed 1, on mnist-digits train (8,000) with the test split (2,000) as
// validation: about 1.5 s of training on one core.
v1::TrainRequest DefaultModelRequest(const std::string& model_name);

// Submits DefaultModelRequest(model_name) unless a job for that model was
// ever submitted (so a model that was trained, or deliberately deleted, is
// left alone across restarts). Errors of Submit are returned.
absl::Status EnsureDefaultModel(const std::string& model_name, JobManager* jobs);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_DEFAULT_MODEL_H_
