#include "server/model_registry.h"

#include <memory>
#include <string>

#include "core/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_convert.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;

v1::ModelVersion FreshVersion(const std::string& name, uint64_t seed) {
  NetworkConfig config;
  config.input_size = 4;
  config.hidden_sizes = {3};
  config.output_size = 2;
  absl::StatusOr<Network<float>> network = Network<float>::Create(config, seed);
  EXPECT_TRUE(network.ok());
  v1::ModelVersion version;
  version.set_model_name(name);
  *version.mutable_network() = NetworkConfigToProto(config);
  TensorsToProto(network->ExportTensors(), version.mutable_tensors());
  return version;
}

v1::ModelRef Ref(const std::string& name) {
  v1::ModelRef ref;
  ref.set_name(name);
  return ref;
}

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(store_, SqliteModelStore::Open(TempPath("registry.db")));
    registry_ = std::make_unique<ModelRegistry>(store_.get(), /*cache_capacity=*/2);
  }
  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
};

TEST_F(ModelRegistryTest, ResolvesVersionAliasAndLatest) {
  ASSERT_OK(registry_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(registry_->Register(FreshVersion("m", 2), nullptr).status());
  EXPECT_THAT(registry_->Resolve(Ref("m")), IsOkAndHolds(2));
  v1::ModelRef ref = Ref("m");
  ref.set_version(1);
  EXPECT_THAT(registry_->Resolve(ref), IsOkAndHolds(1));
  ref.set_version(0);
  EXPECT_THAT(registry_->Resolve(ref), StatusIs(absl::StatusCode::kInvalidArgument));
  ref.set_version(3);
  EXPECT_THAT(registry_->Resolve(ref), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(registry_->SetAlias("m", "stable", 1).status());
  ref.set_alias("stable");
  EXPECT_THAT(registry_->Resolve(ref), IsOkAndHolds(1));
  EXPECT_THAT(registry_->SetAlias("m", "7up", 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry_->Resolve(Ref("bad name!")), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry_->Resolve(Ref("other")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ModelRegistryTest, CachesLoadedNetworksAndForgetsDeletedOnes) {
  ASSERT_OK(registry_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK_AND_ASSIGN(LoadedModel first, registry_->Load(Ref("m")));
  ASSERT_OK_AND_ASSIGN(LoadedModel second, registry_->Load(Ref("m")));
  EXPECT_EQ(first.network.get(), second.network.get());  // from the cache
  ASSERT_OK(registry_->DeleteVersion("m", 1));
  EXPECT_THAT(registry_->Load(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
  v1::ModelRef ref = Ref("m");
  ref.set_version(1);
  EXPECT_THAT(registry_->Load(ref), StatusIs(absl::StatusCode::kNotFound));
  // The network a request still holds stays usable.
  Matrix x = Matrix::Ones(2, 4);
  EXPECT_OK(first.network->Predict(x, BnMode::kInference).status());
}

TEST_F(ModelRegistryTest, EvictsTheLeastRecentlyUsedBeyondCapacity) {
  for (uint64_t s = 1; s <= 3; ++s) {
    ASSERT_OK(registry_->Register(FreshVersion("m", s), nullptr).status());
  }
  auto load = [&](int version) {
    v1::ModelRef ref = Ref("m");
    ref.set_version(version);
    absl::StatusOr<LoadedModel> loaded = registry_->Load(ref);
    EXPECT_TRUE(loaded.ok());
    return loaded->network;
  };
  const std::shared_ptr<const Network<float>> v1_net = load(1);
  const std::shared_ptr<const Network<float>> v2_net = load(2);
  EXPECT_EQ(load(1), v1_net);  // 1 is now the most recent
  load(3);                     // evicts 2
  EXPECT_EQ(load(1), v1_net);
  EXPECT_NE(load(2), v2_net);  // reloaded from the store
}

TEST_F(ModelRegistryTest, RegisterRejectsTensorsThatDoNotMatchTheConfig) {
  v1::ModelVersion version = FreshVersion("m", 1);
  version.mutable_tensors()->RemoveLast();
  EXPECT_THAT(registry_->Register(version, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  version = FreshVersion("m", 1);
  version.mutable_network()->set_input_size(5);
  EXPECT_THAT(registry_->Register(version, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  version = FreshVersion("m", 1);
  version.mutable_network()->set_input_size(0);
  EXPECT_THAT(registry_->Register(version, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry_->Resolve(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
}

// An imported version whose config asks for a huge network (with the small
// tensors of another) used to allocate the config's tensors before comparing
// them: about 4 TB here, which ends the process. It is InvalidArgument.
TEST_F(ModelRegistryTest, RegisterRejectsAHugeConfigWithoutAllocatingIt) {
  v1::ModelVersion version = FreshVersion("m", 1);
  version.mutable_network()->set_hidden_sizes(0, 1 << 30);
  absl::Status status = registry_->Register(version, nullptr).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("hidden_sizes"));
  version = FreshVersion("m", 1);
  version.mutable_network()->set_input_size(1 << 30);
  status = registry_->Register(version, nullptr).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("input_size"));
  EXPECT_THAT(registry_->Resolve(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace bnserve
