#include "server/model_catalog.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/batch_norm_folding.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

// A client's string for an error message: itself when short, else its
// first 32 bytes and its length (an 8 KiB name must not come back whole).
std::string Quote(const std::string& text) {
  if (text.size() <= 64) return absl::StrCat("\"", text, "\"");
  return absl::StrCat("of ", text.size(), " bytes starting \"", text.substr(0, 32), "\"");
}

// InvalidArgument naming the first tensor with a NaN or infinite value, or a
// running_var with a negative one: such a network answers NaN.
absl::Status CheckTensorValues(const v1::ModelVersion& version) {
  for (const v1::NamedTensor& named : version.tensors()) {
    const bool variance = named.name().rfind("running_var", 0) == 0;
    const google::protobuf::RepeatedField<float>& values = named.tensor().values();
    for (int i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor \"", named.name(), "\" has a non-finite value (", values[i], ") at ", i));
      }
      if (variance && values[i] < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor \"", named.name(), "\" has a negative variance (", values[i], ") at ", i));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

ModelCatalog::ModelCatalog(ModelStore* store, int cache_capacity, bool fold_batchnorm)
    : store_(store),
      cache_capacity_(cache_capacity < 1 ? 1 : cache_capacity),
      fold_batchnorm_(fold_batchnorm) {}

absl::Status ModelCatalog::ValidateModelName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name) ok = ok && IsNameChar(c);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("model name ", Quote(name), " must match [A-Za-z0-9._-]{1,64}"));
  }
  return absl::OkStatus();
}

absl::Status ModelCatalog::ValidateAlias(const std::string& alias) {
  bool ok = !alias.empty() && alias.size() <= 64 && absl::ascii_isalpha(alias[0]);
  for (char c : alias) ok = ok && IsNameChar(c);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("alias ", Quote(alias), " must match [A-Za-z][A-Za-z0-9._-]{0,63}"));
  }
  return absl::OkStatus();
}

std::string ModelCatalog::Key(const std::string& model_name, int version) {
  return absl::StrCat(model_name, "@", version);
}

absl::StatusOr<int> ModelCatalog::Select(const v1::ModelRef& ref, const v1::Model& model) {
  switch (ref.selector_case()) {
    case v1::ModelRef::kVersion: {
      // versions are ascending.
      auto it = std::lower_bound(model.versions().begin(), model.versions().end(), ref.version());
      if (it == model.versions().end() || *it != ref.version()) {
        return absl::NotFoundError(
            absl::StrCat("model \"", ref.name(), "\" has no version ", ref.version()));
      }
      return ref.version();
    }
    case v1::ModelRef::kAlias: {
      auto it = model.aliases().find(ref.alias());
      if (it == model.aliases().end()) {
        return absl::NotFoundError(
            absl::StrCat("model \"", ref.name(), "\" has no alias \"", ref.alias(), "\""));
      }
      return it->second;
    }
    case v1::ModelRef::SELECTOR_NOT_SET:
      break;
  }
  return model.latest_version();
}

absl::StatusOr<int> ModelCatalog::Resolve(const v1::ModelRef& ref) {
  RETURN_IF_ERROR(ValidateModelName(ref.name()));
  if (ref.selector_case() == v1::ModelRef::kVersion && ref.version() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version must be positive, got ", ref.version()));
  }
  // Read the generation before the store: what the store returns below is at
  // least as new as `generation`, so keeping it under that generation is safe.
  // A store without a generation: nothing is kept, every call asks it.
  const std::optional<uint64_t> generation = store_->CatalogGeneration();
  if (generation.has_value()) {
    absl::MutexLock lock(&mu_);
    if (*generation > catalog_generation_) {
      catalog_.clear();
      catalog_generation_ = *generation;
    }
    if (*generation == catalog_generation_) {
      auto it = catalog_.find(ref.name());
      if (it != catalog_.end()) return Select(ref, it->second);
    }
  }
  absl::StatusOr<v1::Model> model = store_->GetModel(ref.name());
  if (!model.ok()) {
    if (model.status().code() != absl::StatusCode::kNotFound) return model.status();
    // No version at all: the same answer as for a model with other versions.
    v1::Model empty;
    empty.set_name(ref.name());
    if (ref.selector_case() == v1::ModelRef::SELECTOR_NOT_SET) return model.status();
    return Select(ref, empty);
  }
  absl::StatusOr<int> version = Select(ref, *model);
  if (generation.has_value()) {
    absl::MutexLock lock(&mu_);
    if (catalog_generation_ == *generation) catalog_[ref.name()] = *std::move(model);
  }
  return version;
}

absl::StatusOr<LoadedModel> ModelCatalog::Load(const v1::ModelRef& ref) {
  ASSIGN_OR_RETURN(int version, Resolve(ref));
  return LoadVersion(ref.name(), version, /*count_hit=*/true);
}

absl::StatusOr<LoadedModel> ModelCatalog::LoadVersion(const std::string& model_name,
                                                      int version, bool count_hit) {
  LoadedModel loaded{model_name, version, nullptr, nullptr};
  const std::string key = Key(model_name, version);
  uint64_t deletions_before;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (count_hit) ++cache_hits_;
      it->second.last_used = ++tick_;
      loaded.network = it->second.network;
      loaded.inference_network = it->second.inference_network;
      return loaded;
    }
    ++cache_misses_;
    deletions_before = deletions_;
  }
  ASSIGN_OR_RETURN(v1::ModelVersion stored, store_->GetVersion(model_name, version, true));
  absl::StatusOr<Network<float>> network = NetworkFromVersion(stored);
  if (!network.ok()) {
    return absl::DataLossError(absl::StrCat("stored version ", version, " of \"", model_name,
                                            "\" does not build: ",
                                            network.status().message()));
  }
  loaded.network = std::make_shared<const Network<float>>(std::move(network).value());
  loaded.inference_network = loaded.network;
  if (fold_batchnorm_ && loaded.network->config().use_batchnorm) {
    absl::StatusOr<Network<float>> folded = FoldBatchNorm(*loaded.network);
    if (!folded.ok()) {
      return absl::DataLossError(absl::StrCat("stored version ", version, " of \"", model_name,
                                              "\" does not fold (serve it with "
                                              "--fold_batchnorm=false): ",
                                              folded.status().message()));
    }
    loaded.inference_network = std::make_shared<const Network<float>>(*std::move(folded));
  }
  // The warm-up: one row through the serving path of each network, so that
  // a version is ready only once it has answered (and its first request pays
  // no first-touch cost of its own).
  const Matrix zeros = Matrix::Zero(1, loaded.network->config().input_size);
  RETURN_IF_ERROR(loaded.network->PredictProbabilities(zeros, BnMode::kInference).status());
  if (loaded.folded()) {
    RETURN_IF_ERROR(
        loaded.inference_network->PredictProbabilities(zeros, BnMode::kInference).status());
  }
  bool inserted = false;
  {
    absl::MutexLock lock(&mu_);
    if (deletions_ == deletions_before) {
      cache_[key] = CacheEntry{loaded.network, loaded.inference_network, ++tick_};
      inserted = true;
      while (static_cast<int>(cache_.size()) > cache_capacity_) {
        auto oldest = cache_.begin();
        for (auto it = cache_.begin(); it != cache_.end(); ++it) {
          if (it->second.last_used < oldest->second.last_used) oldest = it;
        }
        cache_.erase(oldest);
      }
    }
  }
  if (inserted && ready_listener_) ready_listener_(model_name, version);
  return loaded;
}

ModelCacheStats ModelCatalog::cache_stats() {
  absl::MutexLock lock(&mu_);
  ModelCacheStats stats;
  stats.hits = cache_hits_;
  stats.misses = cache_misses_;
  stats.entries = static_cast<int64_t>(cache_.size());
  stats.capacity = cache_capacity_;
  return stats;
}

void ModelCatalog::KeepLatestReady(const std::string& model_name) {
  {
    absl::MutexLock lock(&loader_mu_);
    keep_ready_.insert(model_name);
  }
  v1::ModelRef latest;
  latest.set_name(model_name);
  absl::StatusOr<int> version = Resolve(latest);
  if (version.ok()) LoadInBackground(model_name, *version);
}

bool ModelCatalog::IsReady(const std::string& model_name, int version) {
  absl::MutexLock lock(&mu_);
  return cache_.contains(Key(model_name, version));
}

void ModelCatalog::LoadInBackground(const std::string& model_name, int version) {
  if (IsReady(model_name, version)) return;
  absl::MutexLock lock(&loader_mu_);
  if (stopping_ || !loading_.insert(Key(model_name, version)).second) return;
  load_queue_.emplace_back(model_name, version);
  if (!loader_.joinable()) loader_ = std::thread([this] { LoaderLoop(); });
}

void ModelCatalog::LoaderLoop() {
  absl::MutexLock lock(&loader_mu_);
  while (true) {
    loader_mu_.Await(absl::Condition(
        +[](ModelCatalog* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->loader_mu_) {
          return self->stopping_ || !self->load_queue_.empty();
        },
        this));
    if (stopping_) return;
    const auto [model_name, version] = load_queue_.front();
    load_queue_.pop_front();
    loader_mu_.Unlock();
    const absl::Status status = LoadVersion(model_name, version, /*count_hit=*/false).status();
    if (!status.ok()) {
      BNSERVE_LOG(WARNING) << "background load of version " << version << " of \""
                           << model_name << "\" failed: " << status;
    }
    loader_mu_.Lock();
    loading_.erase(Key(model_name, version));
  }
}

ModelCatalog::~ModelCatalog() { StopBackgroundLoads(); }

void ModelCatalog::StopBackgroundLoads() {
  std::thread loader;
  {
    absl::MutexLock lock(&loader_mu_);
    stopping_ = true;
    loader = std::move(loader_);
  }
  if (loader.joinable()) loader.join();
}

absl::StatusOr<v1::Model> ModelCatalog::GetModel(const std::string& model_name) {
  RETURN_IF_ERROR(ValidateModelName(model_name));
  return store_->GetModel(model_name);
}

absl::StatusOr<v1::ModelVersion> ModelCatalog::Get(const v1::ModelRef& ref,
                                                    bool include_tensors) {
  ASSIGN_OR_RETURN(int version, Resolve(ref));
  ASSIGN_OR_RETURN(v1::ModelVersion stored,
                   store_->GetVersion(ref.name(), version, include_tensors));
  const absl::StatusOr<NetworkConfig> config = NetworkConfigFromProto(stored.network(), 0);
  stored.set_served_folded(fold_batchnorm_ && config.ok() && config->use_batchnorm);
  return stored;
}

absl::StatusOr<v1::ModelVersion> ModelCatalog::Register(const v1::ModelVersion& version,
                                                         const v1::Job* finished_job) {
  RETURN_IF_ERROR(ValidateModelName(version.model_name()));
  RETURN_IF_ERROR(NetworkFromVersion(version).status());
  RETURN_IF_ERROR(CheckTensorValues(version));
  return Store(version, finished_job);
}

absl::StatusOr<v1::ModelVersion> ModelCatalog::RegisterNetwork(const Network<float>& network,
                                                               v1::ModelVersion metadata,
                                                               const v1::Job* finished_job) {
  RETURN_IF_ERROR(ValidateModelName(metadata.model_name()));
  *metadata.mutable_network() = NetworkConfigToProto(network.config());
  TensorsToProto(network.ExportTensors(), metadata.mutable_tensors());
  // Valid in shape by construction, but a diverged training run leaves NaN
  // or infinite values, and such a version would answer NaN.
  RETURN_IF_ERROR(CheckTensorValues(metadata));
  return Store(metadata, finished_job);
}

absl::StatusOr<v1::ModelVersion> ModelCatalog::Store(const v1::ModelVersion& version,
                                                     const v1::Job* finished_job) {
  ASSIGN_OR_RETURN(int number, store_->AddVersion(version, finished_job));
  bool keep_ready;
  {
    absl::MutexLock lock(&loader_mu_);
    keep_ready = keep_ready_.contains(version.model_name());
  }
  if (keep_ready) LoadInBackground(version.model_name(), number);
  return store_->GetVersion(version.model_name(), number, false);
}

absl::StatusOr<std::vector<v1::Model>> ModelCatalog::ListModels() {
  return store_->ListModels();
}

absl::Status ModelCatalog::DeleteVersion(const std::string& model_name, int version) {
  RETURN_IF_ERROR(ValidateModelName(model_name));
  RETURN_IF_ERROR(store_->DeleteVersion(model_name, version));
  // After the store: a load that read the version before the delete either
  // inserted already (erased here) or sees deletions_ changed and skips.
  absl::MutexLock lock(&mu_);
  ++deletions_;
  cache_.erase(Key(model_name, version));
  return absl::OkStatus();
}

absl::StatusOr<v1::Model> ModelCatalog::SetAlias(const std::string& model_name,
                                                  const std::string& alias, int version) {
  RETURN_IF_ERROR(ValidateModelName(model_name));
  RETURN_IF_ERROR(ValidateAlias(alias));
  RETURN_IF_ERROR(store_->SetAlias(model_name, alias, version));
  return store_->GetModel(model_name);
}

absl::Status ModelCatalog::DeleteAlias(const std::string& model_name,
                                        const std::string& alias) {
  RETURN_IF_ERROR(ValidateModelName(model_name));
  return store_->DeleteAlias(model_name, alias);
}

}  // namespace bnserve
