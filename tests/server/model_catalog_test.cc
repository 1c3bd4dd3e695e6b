#include "server/model_catalog.h"

#include <atomic>
#include <cctype>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/batch_norm_folding.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_convert.h"
#include "server/sqlite_model_store.h"
#include "tests/server/forwarding_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::ForwardingModelStore;
using ::bnserve::testing::IsOk;
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

class ModelCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(store_, SqliteModelStore::Open(TempPath("catalog.db")));
    catalog_ = std::make_unique<ModelCatalog>(store_.get(), /*cache_capacity=*/2);
  }
  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
};

TEST_F(ModelCatalogTest, ResolvesVersionAliasAndLatest) {
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(catalog_->Register(FreshVersion("m", 2), nullptr).status());
  EXPECT_THAT(catalog_->Resolve(Ref("m")), IsOkAndHolds(2));
  v1::ModelRef ref = Ref("m");
  ref.set_version(1);
  EXPECT_THAT(catalog_->Resolve(ref), IsOkAndHolds(1));
  ref.set_version(0);
  EXPECT_THAT(catalog_->Resolve(ref), StatusIs(absl::StatusCode::kInvalidArgument));
  ref.set_version(3);
  EXPECT_THAT(catalog_->Resolve(ref), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(catalog_->SetAlias("m", "stable", 1).status());
  ref.set_alias("stable");
  EXPECT_THAT(catalog_->Resolve(ref), IsOkAndHolds(1));
  EXPECT_THAT(catalog_->SetAlias("m", "7up", 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(catalog_->Resolve(Ref("bad name!")), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(catalog_->Resolve(Ref("other")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ModelCatalogTest, CachesLoadedNetworksAndForgetsDeletedOnes) {
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK_AND_ASSIGN(LoadedModel first, catalog_->Load(Ref("m")));
  ASSERT_OK_AND_ASSIGN(LoadedModel second, catalog_->Load(Ref("m")));
  EXPECT_EQ(first.network.get(), second.network.get());  // from the cache
  ASSERT_OK(catalog_->DeleteVersion("m", 1));
  EXPECT_THAT(catalog_->Load(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
  v1::ModelRef ref = Ref("m");
  ref.set_version(1);
  EXPECT_THAT(catalog_->Load(ref), StatusIs(absl::StatusCode::kNotFound));
  // The network a request still holds stays usable.
  Matrix x = Matrix::Ones(2, 4);
  EXPECT_OK(first.network->Predict(x, BnMode::kInference).status());
}

TEST_F(ModelCatalogTest, EvictsTheLeastRecentlyUsedBeyondCapacity) {
  for (uint64_t s = 1; s <= 3; ++s) {
    ASSERT_OK(catalog_->Register(FreshVersion("m", s), nullptr).status());
  }
  auto load = [&](int version) {
    v1::ModelRef ref = Ref("m");
    ref.set_version(version);
    absl::StatusOr<LoadedModel> loaded = catalog_->Load(ref);
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

// A folding catalog (the default) keeps the stored network for
// BATCH_STATISTICS and builds its BatchNorm fold once for INFERENCE; it
// answers INFERENCE with the fold's numbers, bit for bit, and GetModel says
// so. Without folding, or without BatchNorm, INFERENCE runs the stored
// network.
TEST_F(ModelCatalogTest, FoldsBatchNormForInferenceOnceAndKeepsTheStoredNetwork) {
  v1::ModelVersion bn = FreshVersion("bn", 1);
  ASSERT_OK(catalog_->Register(bn, nullptr).status());
  v1::ModelVersion plain = FreshVersion("plain", 2);
  plain.mutable_network()->set_use_batchnorm(false);
  for (int i = plain.tensors_size() - 1; i >= 0; --i) {
    const std::string& name = plain.tensors(i).name();
    const bool affine = name[0] == 'W' || (name[0] == 'b' && std::isdigit(name[1]));
    if (!affine) plain.mutable_tensors()->DeleteSubrange(i, 1);  // BatchNorm's
  }
  ASSERT_OK(catalog_->Register(plain, nullptr).status());

  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, catalog_->Load(Ref("bn")));
  EXPECT_TRUE(loaded.folded());
  EXPECT_TRUE(loaded.network->config().use_batchnorm);
  EXPECT_FALSE(loaded.inference_network->config().use_batchnorm);
  EXPECT_EQ(&loaded.NetworkFor(BnMode::kBatchStatistics), loaded.network.get());
  EXPECT_EQ(&loaded.NetworkFor(BnMode::kInference), loaded.inference_network.get());
  ASSERT_OK_AND_ASSIGN(Network<float> stored, NetworkFromVersion(bn));
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(stored));
  EXPECT_EQ(loaded.inference_network->ExportTensors(), folded.ExportTensors());
  EXPECT_EQ(loaded.network->ExportTensors(), stored.ExportTensors());
  ASSERT_OK_AND_ASSIGN(LoadedModel again, catalog_->Load(Ref("bn")));
  EXPECT_EQ(again.inference_network, loaded.inference_network);  // built once, cached
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion bn_meta, catalog_->Get(Ref("bn"), false));
  EXPECT_TRUE(bn_meta.served_folded());

  ASSERT_OK_AND_ASSIGN(LoadedModel plain_loaded, catalog_->Load(Ref("plain")));
  EXPECT_FALSE(plain_loaded.folded());
  EXPECT_EQ(plain_loaded.inference_network, plain_loaded.network);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion plain_meta, catalog_->Get(Ref("plain"), false));
  EXPECT_FALSE(plain_meta.served_folded());

  ModelCatalog unfolding(store_.get(), 2, /*fold_batchnorm=*/false);
  EXPECT_FALSE(unfolding.fold_batchnorm());
  ASSERT_OK_AND_ASSIGN(LoadedModel unfolded, unfolding.Load(Ref("bn")));
  EXPECT_FALSE(unfolded.folded());
  EXPECT_EQ(&unfolded.NetworkFor(BnMode::kInference), unfolded.network.get());
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion unfolded_meta, unfolding.Get(Ref("bn"), false));
  EXPECT_FALSE(unfolded_meta.served_folded());
}

// A version whose fold is not finite (a gamma no float can scale a weight
// by) is not served by a folding catalog: DataLoss naming the way out.
TEST_F(ModelCatalogTest, AVersionThatDoesNotFoldIsDataLoss) {
  v1::ModelVersion huge = FreshVersion("huge", 3);
  for (v1::NamedTensor& named : *huge.mutable_tensors()) {
    if (named.name() == "gamma1") named.mutable_tensor()->set_values(0, 3e38f);
    if (named.name() == "W1") named.mutable_tensor()->set_values(0, 10.0f);
  }
  ASSERT_OK(catalog_->Register(huge, nullptr).status());
  absl::StatusOr<LoadedModel> loaded = catalog_->Load(Ref("huge"));
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(loaded.status().message(), ::testing::HasSubstr("--fold_batchnorm=false"));
  ModelCatalog unfolding(store_.get(), 2, /*fold_batchnorm=*/false);
  EXPECT_OK(unfolding.Load(Ref("huge")).status());
}

// Every Load of a resolved version is a hit or a miss, nothing else is; an
// eviction turns the next Load of that version into a miss again.
TEST_F(ModelCatalogTest, CacheStatsCountHitsAndMissesOfResolvedLoads) {
  for (uint64_t s = 1; s <= 3; ++s) {
    ASSERT_OK(catalog_->Register(FreshVersion("m", s), nullptr).status());
  }
  auto load = [&](int version) {
    v1::ModelRef ref = Ref("m");
    ref.set_version(version);
    return catalog_->Load(ref).status();
  };
  ModelCacheStats stats = catalog_->cache_stats();
  EXPECT_EQ(stats.hits, 0);
  EXPECT_EQ(stats.misses, 0);
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.capacity, 2);
  ASSERT_OK(load(1));                             // miss
  ASSERT_OK(load(1));                             // hit
  ASSERT_OK(catalog_->Load(Ref("m")).status());   // latest = 3: miss
  ASSERT_OK(load(2));                             // miss, evicts 1
  ASSERT_OK(load(1));                             // miss again
  EXPECT_THAT(load(4), StatusIs(absl::StatusCode::kNotFound));           // neither
  EXPECT_THAT(catalog_->Load(Ref("nope")), StatusIs(absl::StatusCode::kNotFound));
  stats = catalog_->cache_stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 4);
  EXPECT_EQ(stats.entries, 2);
}

// A network this server trained is stored as it is: its config and every
// tensor, with the metadata and the finished job, and it loads back equal.
TEST_F(ModelCatalogTest, RegisterNetworkStoresATrainedNetworkAsItIs) {
  NetworkConfig config;
  config.input_size = 4;
  config.hidden_sizes = {3};
  config.output_size = 2;
  ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(config, 5));
  v1::ModelVersion metadata;
  metadata.set_model_name("trained");
  metadata.set_job_id("job-000007");
  metadata.mutable_final_metrics()->set_epoch(3);
  v1::Job finished;
  finished.set_job_id("job-000007");
  finished.set_state(v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(v1::ModelVersion stored,
                       catalog_->RegisterNetwork(network, metadata, &finished));
  EXPECT_EQ(stored.version(), 1);
  EXPECT_EQ(stored.job_id(), "job-000007");
  EXPECT_EQ(stored.final_metrics().epoch(), 3);
  EXPECT_EQ(stored.network().input_size(), 4);
  EXPECT_EQ(stored.tensors_size(), 0);  // metadata only
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Job> jobs, store_->ListJobs());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].model_version(), 1);
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, catalog_->Load(Ref("trained")));
  EXPECT_EQ(loaded.network->ExportTensors(), network.ExportTensors());

  metadata.set_model_name("no spaces");
  EXPECT_THAT(catalog_->RegisterNetwork(network, metadata, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ModelCatalogTest, RegisterRejectsTensorsThatDoNotMatchTheConfig) {
  v1::ModelVersion version = FreshVersion("m", 1);
  version.mutable_tensors()->RemoveLast();
  EXPECT_THAT(catalog_->Register(version, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  version = FreshVersion("m", 1);
  version.mutable_network()->set_input_size(5);
  EXPECT_THAT(catalog_->Register(version, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  version = FreshVersion("m", 1);
  version.mutable_network()->set_input_size(0);
  EXPECT_THAT(catalog_->Register(version, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(catalog_->Resolve(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ModelCatalogTest, RegisterRejectsNonFiniteTensorsAndNegativeRunningVariance) {
  const v1::ModelVersion good = FreshVersion("m", 1);
  bool saw_running_var = false;
  for (int t = 0; t < good.tensors_size(); ++t) {
    const std::string& name = good.tensors(t).name();
    std::vector<float> bad = {std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
    if (name.rfind("running_var", 0) == 0) {
      saw_running_var = true;
      bad.push_back(-0.5f);
    }
    for (float value : bad) {
      v1::ModelVersion version = good;
      v1::Tensor* tensor = version.mutable_tensors(t)->mutable_tensor();
      tensor->set_values(tensor->values_size() - 1, value);
      const absl::Status status = catalog_->Register(version, nullptr).status();
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument)) << name << " = " << value;
      EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(name));
    }
  }
  EXPECT_TRUE(saw_running_var);
  EXPECT_THAT(catalog_->Resolve(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
  // A zero running variance is a valid (constant) feature.
  v1::ModelVersion zero_var = good;
  for (v1::NamedTensor& named : *zero_var.mutable_tensors()) {
    if (named.name().rfind("running_var", 0) == 0) named.mutable_tensor()->set_values(0, 0.0f);
  }
  EXPECT_THAT(catalog_->Register(zero_var, nullptr).status(), IsOk());
  EXPECT_THAT(catalog_->Resolve(Ref("m")), IsOkAndHolds(1));
}

// An imported version whose config asks for a huge network (with the small
// tensors of another) used to allocate the config's tensors before comparing
// them: about 4 TB here, which ends the process. It is InvalidArgument.
TEST_F(ModelCatalogTest, RegisterRejectsAHugeConfigWithoutAllocatingIt) {
  v1::ModelVersion version = FreshVersion("m", 1);
  version.mutable_network()->set_hidden_sizes(0, 1 << 30);
  absl::Status status = catalog_->Register(version, nullptr).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("hidden_sizes"));
  version = FreshVersion("m", 1);
  version.mutable_network()->set_input_size(1 << 30);
  status = catalog_->Register(version, nullptr).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("input_size"));
  EXPECT_THAT(catalog_->Resolve(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
}

// A ModelStore that forwards to a SqliteModelStore and counts the reads that
// resolution used to make on every call.
class CountingStore : public ForwardingModelStore {
 public:
  // Without `forward_generation` the store keeps no catalog generation, as
  // a ModelStore that does not override CatalogGeneration.
  explicit CountingStore(ModelStore* inner, bool forward_generation = true)
      : ForwardingModelStore(inner), forward_generation_(forward_generation) {}
  int catalog_reads() const { return catalog_reads_.load(); }

  absl::StatusOr<v1::ModelVersion> GetVersion(const std::string& model_name, int version,
                                              bool include_tensors) override {
    if (!include_tensors) ++catalog_reads_;
    return ForwardingModelStore::GetVersion(model_name, version, include_tensors);
  }
  absl::StatusOr<int> LatestVersion(const std::string& model_name) override {
    ++catalog_reads_;
    return ForwardingModelStore::LatestVersion(model_name);
  }
  absl::StatusOr<int> ResolveAlias(const std::string& model_name,
                                   const std::string& alias) override {
    ++catalog_reads_;
    return ForwardingModelStore::ResolveAlias(model_name, alias);
  }
  absl::StatusOr<v1::Model> GetModel(const std::string& model_name) override {
    ++catalog_reads_;
    return ForwardingModelStore::GetModel(model_name);
  }
  std::optional<uint64_t> CatalogGeneration() const override {
    if (!forward_generation_) return std::nullopt;
    return ForwardingModelStore::CatalogGeneration();
  }

 private:
  const bool forward_generation_;
  std::atomic<int> catalog_reads_{0};
};

v1::ModelRef AliasRef(const std::string& name, const std::string& alias) {
  v1::ModelRef ref = Ref(name);
  ref.set_alias(alias);
  return ref;
}

v1::ModelRef VersionRef(const std::string& name, int version) {
  v1::ModelRef ref = Ref(name);
  ref.set_version(version);
  return ref;
}

TEST_F(ModelCatalogTest, ResolutionReadsTheStoreOnlyAfterACatalogWrite) {
  CountingStore counting(store_.get());
  ModelCatalog catalog(&counting);
  ASSERT_OK(catalog.Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(catalog.SetAlias("m", "stable", 1).status());
  ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(1));
  const int after_first = counting.catalog_reads();
  for (int i = 0; i < 100; ++i) {
    ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(1));
    ASSERT_THAT(catalog.Resolve(AliasRef("m", "stable")), IsOkAndHolds(1));
    ASSERT_THAT(catalog.Resolve(VersionRef("m", 1)), IsOkAndHolds(1));
    ASSERT_OK(catalog.Load(Ref("m")).status());
  }
  EXPECT_EQ(counting.catalog_reads(), after_first);
  // Jobs and metrics are not catalog writes.
  v1::Job job;
  job.set_job_id("job-1");
  ASSERT_OK(counting.PutJob(job));
  ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(1));
  EXPECT_EQ(counting.catalog_reads(), after_first);
  // A version write is: the next resolution reads the model once.
  ASSERT_OK(catalog.Register(FreshVersion("m", 2), nullptr).status());
  ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(2));
  const int after_write = counting.catalog_reads();
  EXPECT_GT(after_write, after_first);
  ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(2));
  EXPECT_EQ(counting.catalog_reads(), after_write);
}

TEST_F(ModelCatalogTest, AStoreWithoutAGenerationIsAskedEveryTime) {
  CountingStore counting(store_.get(), /*forward_generation=*/false);
  ModelCatalog catalog(&counting);
  ASSERT_OK(catalog.Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(1));
  const int after_first = counting.catalog_reads();
  ASSERT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(1));
  EXPECT_GT(counting.catalog_reads(), after_first);
  ASSERT_OK(store_->AddVersion(FreshVersion("m", 2), nullptr).status());
  EXPECT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(2));
}

TEST_F(ModelCatalogTest, EveryCatalogWriteIsSeenByTheNextResolution) {
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(catalog_->Register(FreshVersion("m", 2), nullptr).status());
  ASSERT_OK(catalog_->SetAlias("m", "prod", 1).status());
  ASSERT_OK_AND_ASSIGN(LoadedModel prod, catalog_->Load(AliasRef("m", "prod")));
  EXPECT_EQ(prod.version, 1);
  // Alias moved: the next load uses the new version's network.
  ASSERT_OK(catalog_->SetAlias("m", "prod", 2).status());
  ASSERT_OK_AND_ASSIGN(LoadedModel moved, catalog_->Load(AliasRef("m", "prod")));
  EXPECT_EQ(moved.version, 2);
  ASSERT_OK_AND_ASSIGN(LoadedModel latest, catalog_->Load(Ref("m")));
  EXPECT_EQ(moved.network.get(), latest.network.get());
  EXPECT_NE(moved.network.get(), prod.network.get());
  // Alias deleted.
  ASSERT_OK(catalog_->DeleteAlias("m", "prod"));
  EXPECT_THAT(catalog_->Resolve(AliasRef("m", "prod")), StatusIs(absl::StatusCode::kNotFound));
  // Latest deleted: latest falls back to the one before; the deleted one is gone.
  ASSERT_OK(catalog_->DeleteVersion("m", 2));
  EXPECT_THAT(catalog_->Resolve(Ref("m")), IsOkAndHolds(1));
  EXPECT_THAT(catalog_->Load(VersionRef("m", 2)), StatusIs(absl::StatusCode::kNotFound));
  // A new version after a delete takes a new number and becomes the latest.
  ASSERT_OK(catalog_->Register(FreshVersion("m", 3), nullptr).status());
  EXPECT_THAT(catalog_->Resolve(Ref("m")), IsOkAndHolds(3));
  // Every version deleted: the model is unknown.
  ASSERT_OK(catalog_->DeleteVersion("m", 1));
  ASSERT_OK(catalog_->DeleteVersion("m", 3));
  EXPECT_THAT(catalog_->Load(Ref("m")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(catalog_->Resolve(VersionRef("m", 1)), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ModelCatalogTest, WritesThatBypassTheRegistryAreSeenToo) {
  // The job manager records a finished job with its version through the
  // catalog, but anything holding the store may write to it: resolution
  // follows the store's catalog generation, not the catalog's own writes.
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_THAT(catalog_->Resolve(Ref("m")), IsOkAndHolds(1));
  v1::Job finished;
  finished.set_job_id("job-7");
  finished.set_state(v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(int number, store_->AddVersion(FreshVersion("m", 2), &finished));
  EXPECT_THAT(catalog_->Resolve(Ref("m")), IsOkAndHolds(number));
  ASSERT_OK(store_->SetAlias("m", "prod", 1));
  EXPECT_THAT(catalog_->Resolve(AliasRef("m", "prod")), IsOkAndHolds(1));
  ASSERT_OK(store_->DeleteAlias("m", "prod"));
  EXPECT_THAT(catalog_->Resolve(AliasRef("m", "prod")), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store_->DeleteVersion("m", 1));
  EXPECT_THAT(catalog_->Load(VersionRef("m", 1)), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ModelCatalogTest, ConcurrentResolutionNeverGoesBackInTime) {
  // The writer moves an alias forward through versions 1..kVersions and then
  // publishes the version; a reader that saw version k published must resolve
  // the alias (and the latest version) to k or later, never to a stale value.
  constexpr int kVersions = 12;
  for (int v = 1; v <= kVersions; ++v) {
    ASSERT_OK(catalog_->Register(FreshVersion("m", v), nullptr).status());
  }
  ASSERT_OK(catalog_->SetAlias("m", "prod", 1).status());
  std::atomic<int> published{1};
  std::atomic<bool> done{false};
  std::atomic<int> stale{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        const int seen = published.load();
        absl::StatusOr<int> alias = catalog_->Resolve(AliasRef("m", "prod"));
        absl::StatusOr<LoadedModel> loaded = catalog_->Load(AliasRef("m", "prod"));
        if (!alias.ok() || !loaded.ok()) {
          ++failed;
          continue;
        }
        if (*alias < seen || loaded->version < seen) ++stale;
      }
    });
  }
  for (int v = 2; v <= kVersions; ++v) {
    ASSERT_OK(catalog_->SetAlias("m", "prod", v).status());
    published.store(v);
    absl::SleepFor(absl::Milliseconds(2));
  }
  done.store(true);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(stale.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_THAT(catalog_->Resolve(AliasRef("m", "prod")), IsOkAndHolds(kVersions));
}

// A store whose GetVersion of one blocked version waits until released.
class GatedStore : public ForwardingModelStore {
 public:
  using ForwardingModelStore::ForwardingModelStore;
  void Block(int version) {
    absl::MutexLock lock(&mu_);
    blocked_ = version;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    blocked_ = 0;
  }
  bool Waiting() {
    absl::MutexLock lock(&mu_);
    return waiting_;
  }
  absl::StatusOr<v1::ModelVersion> GetVersion(const std::string& model_name, int version,
                                              bool include_tensors) override {
    {
      absl::MutexLock lock(&mu_);
      if (version == blocked_) {
        waiting_ = true;
        mu_.Await(absl::Condition(
            +[](GatedStore* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->blocked_ == 0;
            },
            this));
        waiting_ = false;
      }
    }
    return ForwardingModelStore::GetVersion(model_name, version, include_tensors);
  }

 private:
  absl::Mutex mu_;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
};

// Polls `condition` for up to 10 s.
template <typename Condition>
bool Eventually(Condition condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return condition();
}

TEST_F(ModelCatalogTest, AVersionIsReadyOnlyOnceLoadedAndWarmedUp) {
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  std::vector<std::pair<std::string, int>> ready;
  absl::Mutex ready_mu;
  catalog_->SetReadyListener([&](const std::string& name, int version) {
    absl::MutexLock lock(&ready_mu);
    ready.emplace_back(name, version);
  });
  EXPECT_FALSE(catalog_->IsReady("m", 1));
  ASSERT_OK(catalog_->Load(Ref("m")).status());
  EXPECT_TRUE(catalog_->IsReady("m", 1));
  ASSERT_OK(catalog_->Load(Ref("m")).status());  // a cache hit: no second event
  absl::MutexLock lock(&ready_mu);
  EXPECT_EQ(ready, (std::vector<std::pair<std::string, int>>{{"m", 1}}));
}

TEST_F(ModelCatalogTest, BackgroundLoadOfOneVersionNeverMakesAnotherWait) {
  GatedStore gated(store_.get());
  ModelCatalog catalog(&gated, /*cache_capacity=*/4);
  ASSERT_OK(catalog.Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(catalog.Register(FreshVersion("m", 2), nullptr).status());
  v1::ModelRef one = Ref("m");
  one.set_version(1);
  ASSERT_OK(catalog.Load(one).status());

  gated.Block(2);
  catalog.LoadInBackground("m", 2);
  ASSERT_TRUE(Eventually([&] { return gated.Waiting(); }));
  // Version 2 is stuck in the store; version 1 still answers at once, and
  // resolving the latest (2) is not blocked either.
  for (int i = 0; i < 100; ++i) ASSERT_OK(catalog.Load(one).status());
  EXPECT_THAT(catalog.Resolve(Ref("m")), IsOkAndHolds(2));
  EXPECT_FALSE(catalog.IsReady("m", 2));
  catalog.LoadInBackground("m", 2);  // already queued: no second load
  gated.Release();
  EXPECT_TRUE(Eventually([&] { return catalog.IsReady("m", 2); }));
}

TEST_F(ModelCatalogTest, KeepLatestReadyLoadsEachNewVersionInTheBackground) {
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  ASSERT_OK(catalog_->Register(FreshVersion("other", 1), nullptr).status());
  catalog_->KeepLatestReady("m");
  EXPECT_TRUE(Eventually([&] { return catalog_->IsReady("m", 1); }));
  ASSERT_OK(catalog_->Register(FreshVersion("m", 2), nullptr).status());
  EXPECT_TRUE(Eventually([&] { return catalog_->IsReady("m", 2); }));
  ASSERT_OK(catalog_->Register(FreshVersion("other", 2), nullptr).status());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(catalog_->IsReady("other", 2));  // not kept ready: loaded on first use
}

TEST_F(ModelCatalogTest, StoppedBackgroundLoadsIgnoreLaterRequests) {
  ASSERT_OK(catalog_->Register(FreshVersion("m", 1), nullptr).status());
  catalog_->StopBackgroundLoads();
  catalog_->LoadInBackground("m", 1);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(catalog_->IsReady("m", 1));
}

}  // namespace
}  // namespace bnserve
