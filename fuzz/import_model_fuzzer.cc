// libFuzzer target: ImportModel's path after gRPC, end to end. The bytes are
// an ImportModelRequest (as bnctl import sends a user's file); a version
// that the catalog accepts is stored in a real SQLite registry, loaded, and
// answers Predict in both BatchNorm modes, then is deleted again.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "bnserve/v1/model_registry.pb.h"
#include "core/eigen_types.h"
#include "server/model_catalog.h"
#include "server/predictor.h"
#include "server/sqlite_model_store.h"

namespace {

struct Registry {
  std::unique_ptr<bnserve::SqliteModelStore> store;
  std::unique_ptr<bnserve::ModelCatalog> catalog;
  std::unique_ptr<bnserve::Predictor> predictor;
};

Registry* OpenRegistry() {
  char dir[] = "/tmp/bnserve-fuzz-import-XXXXXX";
  if (mkdtemp(dir) == nullptr) std::abort();
  auto* registry = new Registry;
  auto store = bnserve::SqliteModelStore::Open(std::string(dir) + "/registry.db");
  if (!store.ok()) std::abort();
  registry->store = *std::move(store);
  registry->catalog = std::make_unique<bnserve::ModelCatalog>(registry->store.get(), 2);
  registry->predictor = std::make_unique<bnserve::Predictor>(registry->catalog.get(), 16);
  return registry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Registry* registry = OpenRegistry();
  bnserve::v1::ImportModelRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  bnserve::v1::ModelVersion version = request.model();
  if (!request.model_name().empty()) version.set_model_name(request.model_name());
  version.clear_job_id();
  version.set_version(0);
  auto stored = registry->catalog->Register(version, nullptr);
  if (!stored.ok()) return 0;
  bnserve::v1::ModelRef ref;
  ref.set_name(stored->model_name());
  ref.set_version(stored->version());
  const int features = stored->network().input_size();
  if (features > 0 && features <= 4096) {
    bnserve::Matrix rows(2, features);
    for (int i = 0; i < rows.size(); ++i) rows.data()[i] = static_cast<float>(i % 7) - 3.0f;
    (void)registry->predictor->Predict(ref, rows, bnserve::BnMode::kInference);
    (void)registry->predictor->Predict(ref, rows, bnserve::BnMode::kBatchStatistics);
  }
  (void)registry->store->DeleteVersion(stored->model_name(), stored->version());
  return 0;
}
