// Test versions for the ModelStore tests of both backends: random bit
// patterns in a real network's tensors, and a bit-exact comparison.
#ifndef BNSERVE_TESTS_SERVER_MODEL_STORE_TEST_UTIL_H_
#define BNSERVE_TESTS_SERVER_MODEL_STORE_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "bnserve/v1/model_registry.pb.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace testing {

// A version whose tensors are those of a real (BN) network, with every value
// replaced by random bit patterns, including NaN payloads, infinities,
// denormals and -0, so that only a bit-exact store passes.
inline v1::ModelVersion RandomVersion(const std::string& name, uint64_t seed) {
  NetworkConfig config;
  config.input_size = 6;
  config.hidden_sizes = {5, 4};
  config.output_size = 3;
  absl::StatusOr<Network<float>> network = Network<float>::Create(config, seed);
  EXPECT_TRUE(network.ok()) << network.status();
  v1::ModelVersion version;
  version.set_model_name(name);
  *version.mutable_network() = NetworkConfigToProto(config);
  version.set_job_id("job-000001");
  TensorsToProto(network->ExportTensors(), version.mutable_tensors());
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const uint32_t specials[] = {0x7fc00001u, 0xff800000u, 0x00000001u, 0x80000000u, 0x7f7fffffu};
  for (v1::NamedTensor& named : *version.mutable_tensors()) {
    for (int i = 0; i < named.tensor().values_size(); ++i) {
      const uint32_t bits = i < 5 ? specials[i] : static_cast<uint32_t>(rng());
      float value;
      std::memcpy(&value, &bits, sizeof(value));
      named.mutable_tensor()->set_values(i, value);
    }
  }
  return version;
}

inline void ExpectBitIdenticalTensors(const v1::ModelVersion& expected, const v1::ModelVersion& actual) {
  ASSERT_EQ(expected.tensors_size(), actual.tensors_size());
  for (int t = 0; t < expected.tensors_size(); ++t) {
    const v1::NamedTensor& a = expected.tensors(t);
    const v1::NamedTensor& b = actual.tensors(t);
    EXPECT_EQ(a.name(), b.name());
    EXPECT_THAT(b.tensor().shape(), ::testing::ElementsAreArray(a.tensor().shape()));
    ASSERT_EQ(a.tensor().values_size(), b.tensor().values_size()) << a.name();
    EXPECT_EQ(0, std::memcmp(a.tensor().values().data(), b.tensor().values().data(),
                             sizeof(float) * a.tensor().values_size()))
        << "tensor " << a.name() << " differs";
  }
}

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_MODEL_STORE_TEST_UTIL_H_
