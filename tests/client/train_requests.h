// Training requests shared by the tests that drive real bnserve processes
// (e2e_test, multi_replica_test): small jobs on the built-in digits, so that
// a test spends its time on what it checks, not on training.
//
// Stateless functions: thread-safe.
#ifndef BNSERVE_TESTS_CLIENT_TRAIN_REQUESTS_H_
#define BNSERVE_TESTS_CLIENT_TRAIN_REQUESTS_H_

#include <string>

#include "bnserve/v1/training_service.pb.h"

namespace bnserve {
namespace testing {

// A tiny job: 784-24-24-10 with BN, the first 600 mnist-digits training
// images, batch 50, SGD 0.1, seed 7; `epochs` epochs (2 take well under 1 s).
inline v1::TrainRequest SmallDigitsTrainRequest(const std::string& model, int epochs = 2) {
  v1::TrainRequest request;
  request.set_model_name(model);
  request.mutable_network()->add_hidden_sizes(24);
  request.mutable_network()->add_hidden_sizes(24);
  request.mutable_optimizer()->set_type(v1::SGD);
  request.mutable_optimizer()->set_learning_rate(0.1);
  v1::BuiltinData* data = request.mutable_train_data()->mutable_builtin();
  data->set_name("mnist-digits");
  data->set_split(v1::TRAIN);
  data->set_limit(600);
  request.set_epochs(epochs);
  request.set_batch_size(50);
  request.set_seed(7);
  return request;
}

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_CLIENT_TRAIN_REQUESTS_H_
