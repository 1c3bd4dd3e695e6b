// Helpers shared by the server tests: small synthetic data sets and requests.
// No gRPC here: the server-core tests link without it (grpc_test_util.h has
// the gRPC helpers).
#ifndef BNSERVE_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define BNSERVE_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bnserve/v1/training_service.pb.h"
#include "bnserve/v1/types.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/token_store.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace testing {

// The lowercase hex SHA-256 of `token`, as a --auth_tokens file lists it.
inline std::string HexSha256(const std::string& token) {
  const TokenStore::Digest digest = TokenStore::Sha256(token);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// `rows` x `features` values uniform in [0, 1); the label of a row is the
// index of the largest of its first `classes` features (learnable).
inline v1::InlineData SyntheticData(int rows, int features, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  v1::InlineData data;
  data.mutable_features()->add_shape(rows);
  data.mutable_features()->add_shape(features);
  for (int r = 0; r < rows; ++r) {
    int best = 0;
    float best_value = -1;
    for (int c = 0; c < features; ++c) {
      const float value = uniform(rng);
      data.mutable_features()->add_values(value);
      if (c < classes && value > best_value) {
        best_value = value;
        best = c;
      }
    }
    data.add_labels(best);
  }
  return data;
}

// A small, fast training request on synthetic inline data.
inline v1::TrainRequest SmallTrainRequest(const std::string& model_name, int epochs,
                                          int rows = 200) {
  v1::TrainRequest request;
  request.set_model_name(model_name);
  request.mutable_network()->add_hidden_sizes(16);
  request.mutable_network()->add_hidden_sizes(16);
  request.mutable_network()->set_output_size(3);
  request.mutable_optimizer()->set_type(v1::ADAM);
  *request.mutable_train_data()->mutable_inline_data() = SyntheticData(rows, 12, 3, 7);
  *request.mutable_validation_data()->mutable_inline_data() = SyntheticData(50, 12, 3, 8);
  request.set_epochs(epochs);
  request.set_batch_size(20);
  request.set_seed(42);
  return request;
}

// A fresh path under the test temp directory (removed if it exists).
inline std::string TempPath(const std::string& name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string path = absl::StrCat(::testing::TempDir(), "/bnserve_",
                                        info->test_suite_name(), "_", info->name(), "_", name);
  std::filesystem::remove_all(path);
  for (const char* suffix : {"-wal", "-shm", "-reserve"}) std::filesystem::remove(path + suffix);
  return path;
}

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_SERVER_TEST_UTIL_H_
