#include "server/default_model.h"

#include "core/logging.h"
#include "core/status_macros.h"

namespace bnserve {

v1::TrainRequest DefaultModelRequest(const std::string& model_name) {
  v1::TrainRequest request;
  request.set_model_name(model_name);
  v1::NetworkConfig* network = request.mutable_network();
  network->set_input_size(784);
  for (int i = 0; i < 5; ++i) network->add_hidden_sizes(100);
  network->set_output_size(10);
  network->set_activation(v1::RELU);
  network->mutable_weight_init()->set_kind(v1::WeightInit::HE);
  network->set_use_batchnorm(true);
  request.mutable_optimizer()->set_type(v1::SGD);
  request.mutable_optimizer()->set_learning_rate(0.01);
  v1::BuiltinData* train = request.mutable_train_data()->mutable_builtin();
  train->set_name("mnist-digits");
  train->set_split(v1::TRAIN);
  v1::BuiltinData* validation = request.mutable_validation_data()->mutable_builtin();
  validation->set_name("mnist-digits");
  validation->set_split(v1::TEST);
  request.set_epochs(20);
  request.set_batch_size(100);
  request.set_seed(1);
  request.set_description("default model: the book's seed network with BatchNorm (--default_model)");
  return request;
}

absl::Status EnsureDefaultModel(const std::string& model_name, JobManager* jobs) {
  v1::ListJobsRequest list;
  list.set_model_name(model_name);
  list.set_page_size(1);
  ASSIGN_OR_RETURN(v1::ListJobsResponse existing, jobs->List(list));
  if (existing.jobs_size() > 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(v1::Job job, jobs->Submit(DefaultModelRequest(model_name)));
  BNSERVE_LOG(INFO) << "training the default model \"" << model_name << "\" as " << job.job_id();
  return absl::OkStatus();
}

}  // namespace bnserve
