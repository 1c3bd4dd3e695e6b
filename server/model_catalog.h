// ModelCatalog: the domain side of the model registry — named models and
// their versions on top of a ModelStore, with a small cache of loaded
// networks so that Predict and Evaluate need not rebuild a network from the
// database on every call. (The bnserve.v1.ModelRegistry gRPC service,
// ModelRegistryServiceImpl, is a thin layer over it.)
//
//   ModelCatalog catalog(&store, /*cache_capacity=*/8);
//   ASSIGN_OR_RETURN(LoadedModel model, catalog.Load(ref));
//   ASSIGN_OR_RETURN(Matrix p, model.network->PredictProbabilities(x, mode));
//
// A ModelRef names a model and selects a version number, an alias, or (when
// neither is set) the latest version. Resolution runs in memory: the catalog
// keeps each model's versions and aliases as last read from the store and
// rereads them only after the store's catalog generation has moved (any
// version or alias written through the store, by this catalog or by anyone
// else holding the store), so a Predict does not touch the database. The
// network cache keeps the most recently used versions (least recently used
// evicted first); deleting a version drops it.
// Cached networks are shared as shared_ptr<const Network<float>>: const
// methods of Network may run concurrently, and a network stays alive while a
// request uses it even if it is evicted.
//
// BatchNorm folding: a catalog that folds (the default; the server's
// --fold_batchnorm) builds, once per loaded version with BatchNorm, the
// folded network (core/batch_norm_folding.h: each BatchNorm's inference
// affine map folded into the Affine before it) and keeps it next to the
// unfolded one. LoadedModel::NetworkFor(kInference) is then the folded
// network, and NetworkFor(kBatchStatistics) the unfolded one, which also
// stays the network of Evaluate, GetModel and export.
//
// Readiness: a version enters the cache only after it has answered a
// warm-up inference (one row of zeros, INFERENCE mode), so a cached version
// is "ready" (IsReady). LoadInBackground loads a version on the catalog's
// own loader thread; no lock is held while a version is read and built, so
// loading one version never makes a Predict of another wait. A listener set
// with SetReadyListener hears of every version that enters the cache.
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_MODEL_CATALOG_H_
#define BNSERVE_SERVER_MODEL_CATALOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bnserve/v1/model_registry.pb.h"
#include "bnserve/v1/training_service.pb.h"
#include "bnserve/v1/types.pb.h"
#include "core/bn_mode.h"
#include "core/network.h"
#include "server/model_store.h"

namespace bnserve {

// One resolved, loaded model version.
struct LoadedModel {
  std::string model_name;
  int version = 0;
  // The stored network, unfolded.
  std::shared_ptr<const Network<float>> network;
  // The network that answers BnMode::kInference: the BatchNorm-folded
  // network when the catalog folds and the network has BatchNorm, else the
  // same pointer as `network`.
  std::shared_ptr<const Network<float>> inference_network;

  // Whether INFERENCE-mode answers come from a folded network.
  bool folded() const { return inference_network != nullptr && inference_network != network; }
  // The network to run in `mode`: inference_network for kInference (when
  // set), network for kBatchStatistics.
  const Network<float>& NetworkFor(BnMode mode) const {
    return mode == BnMode::kInference && inference_network != nullptr ? *inference_network
                                                                      : *network;
  }
};

// The network cache's counts since the catalog was built (ModelCatalog::
// cache_stats()).
struct ModelCacheStats {
  // Loads answered from the cache.
  int64_t hits = 0;
  // Loads of a resolved version that was not cached, which read it from the
  // store and built it (counted whether or not that then succeeded),
  // background loads included.
  int64_t misses = 0;
  // Networks in the cache now, and its capacity.
  int64_t entries = 0;
  int64_t capacity = 0;
};

class ModelCatalog {
 public:
  // `store` must outlive the catalog. With `fold_batchnorm`, INFERENCE-mode
  // answers come from each version's folded network (see above).
  explicit ModelCatalog(ModelStore* store, int cache_capacity = 8, bool fold_batchnorm = true);

  bool fold_batchnorm() const { return fold_batchnorm_; }

  // StopBackgroundLoads().
  ~ModelCatalog();

  // Drops queued background loads and waits for the one in progress (and
  // its listener call); later LoadInBackground calls do nothing. Idempotent.
  void StopBackgroundLoads();

  ModelCatalog(const ModelCatalog&) = delete;
  ModelCatalog& operator=(const ModelCatalog&) = delete;

  // InvalidArgument unless `name` matches [A-Za-z0-9._-]{1,64}.
  static absl::Status ValidateModelName(const std::string& name);
  // InvalidArgument unless `alias` matches [A-Za-z][A-Za-z0-9._-]{0,63}.
  static absl::Status ValidateAlias(const std::string& alias);

  // The version number `ref` selects. InvalidArgument for a bad name or a
  // version <= 0; NotFound for an unknown model, version or alias.
  absl::StatusOr<int> Resolve(const v1::ModelRef& ref);

  // The network of the version `ref` selects (and its folded network), from
  // the cache or the store. Errors as Resolve; DataLoss if the stored tensors
  // do not build a network or, when folding, do not fold (FoldBatchNorm's
  // non-finite values).
  absl::StatusOr<LoadedModel> Load(const v1::ModelRef& ref);

  // Whether the version is loaded, warmed up and in the cache (no store
  // access, never blocks on a load).
  bool IsReady(const std::string& model_name, int version);

  // Loads the version on the loader thread unless it is ready or already
  // queued; errors of that load are logged. Returns at once.
  void LoadInBackground(const std::string& model_name, int version);

  // From now on, keeps the latest version of `model_name` ready: loads it in
  // the background now (if the model has a version) and each time a new
  // version of it is registered through this catalog.
  void KeepLatestReady(const std::string& model_name);

  // Called (from the thread that loaded it, with no catalog lock held) for
  // every version that enters the cache. Set it before serving; not
  // thread-safe against concurrent loads.
  using ReadyListener = std::function<void(const std::string& model_name, int version)>;
  void SetReadyListener(ReadyListener listener) { ready_listener_ = std::move(listener); }

  // The model's versions and aliases. InvalidArgument for a bad name;
  // NotFound for a model without versions.
  absl::StatusOr<v1::Model> GetModel(const std::string& model_name);

  // Hits and misses so far, and the cache's size: a hit is a Load answered
  // from the cache, a miss a Load or background load that read and built
  // the network (a Load whose ref does not resolve is neither).
  ModelCacheStats cache_stats();

  // The version's metadata, and its tensors when `include_tensors`;
  // served_folded says whether this catalog answers its INFERENCE-mode
  // predictions with the folded network (it folds and the version has
  // BatchNorm).
  absl::StatusOr<v1::ModelVersion> Get(const v1::ModelRef& ref, bool include_tensors);

  // The untrusted path (ImportModel): stores `version` as the next version
  // of version.model_name (see ModelStore::AddVersion; `finished_job` may be
  // null) after checking that its tensors build a network of its config,
  // every value is finite and every running_var is >= 0 (InvalidArgument
  // naming the tensor otherwise; nothing is stored).
  // Returns the stored version's metadata, without tensors.
  absl::StatusOr<v1::ModelVersion> Register(const v1::ModelVersion& version,
                                            const v1::Job* finished_job);

  // A network this server trained: stores it as the next version of
  // metadata.model_name with `metadata` (job id, metrics, training request;
  // its network and tensors are taken from `network`), and `finished_job`
  // as Register does. Its shapes are valid by construction: nothing is
  // parsed or rebuilt; its values are checked as Register checks them (a
  // diverged run has NaNs). InvalidArgument for a bad model name or such a
  // value (nothing stored); store errors.
  absl::StatusOr<v1::ModelVersion> RegisterNetwork(const Network<float>& network,
                                                   v1::ModelVersion metadata,
                                                   const v1::Job* finished_job);

  absl::StatusOr<std::vector<v1::Model>> ListModels();

  // As ModelStore::DeleteVersion; drops the version from the cache.
  absl::Status DeleteVersion(const std::string& model_name, int version);

  // Creates or moves an alias and returns the model. InvalidArgument for a
  // bad alias (including a number); NotFound for an unknown version.
  absl::StatusOr<v1::Model> SetAlias(const std::string& model_name, const std::string& alias,
                                     int version);
  absl::Status DeleteAlias(const std::string& model_name, const std::string& alias);

 private:
  struct CacheEntry {
    std::shared_ptr<const Network<float>> network;
    std::shared_ptr<const Network<float>> inference_network;
    uint64_t last_used = 0;
  };

  static std::string Key(const std::string& model_name, int version);

  // Load's tail for a resolved version: the cached network, or one read,
  // built, warmed up and cached. A cached answer counts as a hit only when
  // `count_hit` (a request's Load, not a background load).
  absl::StatusOr<LoadedModel> LoadVersion(const std::string& model_name, int version,
                                          bool count_hit);

  // The loader thread's loop: loads queued versions until stopping_.
  void LoaderLoop();

  // Stores a checked version and returns its metadata (Register's tail).
  absl::StatusOr<v1::ModelVersion> Store(const v1::ModelVersion& version,
                                         const v1::Job* finished_job);

  // The version `ref` selects in `model` (the model's versions and aliases).
  // NotFound for an unknown version or alias.
  static absl::StatusOr<int> Select(const v1::ModelRef& ref, const v1::Model& model);

  ModelStore* const store_;
  const int cache_capacity_;
  const bool fold_batchnorm_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
  uint64_t tick_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cache_hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cache_misses_ ABSL_GUARDED_BY(mu_) = 0;
  // Versions and aliases of the models resolved so far, valid for the store's
  // catalog generation `catalog_generation_`; emptied when it moves. Only
  // models that exist are kept.
  absl::flat_hash_map<std::string, v1::Model> catalog_ ABSL_GUARDED_BY(mu_);
  uint64_t catalog_generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Incremented by every delete: a load that started before a delete does
  // not put its (possibly deleted) network into the cache.
  uint64_t deletions_ ABSL_GUARDED_BY(mu_) = 0;

  ReadyListener ready_listener_;
  // Background loads: keys queued (and the one being loaded, until done).
  absl::Mutex loader_mu_;
  std::deque<std::pair<std::string, int>> load_queue_ ABSL_GUARDED_BY(loader_mu_);
  absl::flat_hash_set<std::string> loading_ ABSL_GUARDED_BY(loader_mu_);
  bool stopping_ ABSL_GUARDED_BY(loader_mu_) = false;
  absl::flat_hash_set<std::string> keep_ready_ ABSL_GUARDED_BY(loader_mu_);
  std::thread loader_ ABSL_GUARDED_BY(loader_mu_);  // started by the first LoadInBackground
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_MODEL_CATALOG_H_
