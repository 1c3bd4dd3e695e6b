// ForwardingModelStore: a ModelStore test double that passes every call,
// CatalogGeneration included, to a wrapped store. A test derives from it and
// overrides only the methods it changes (e.g. to block), calling
// ForwardingModelStore::Method to go on to the wrapped store.
//
//   class SlowStore : public testing::ForwardingModelStore {
//    public:
//     using ForwardingModelStore::ForwardingModelStore;
//     absl::Status PutJob(const v1::Job& job) override {
//       absl::SleepFor(absl::Milliseconds(10));
//       return ForwardingModelStore::PutJob(job);
//     }
//   };
//
// Thread-safety: as thread-safe as the wrapped store (it adds no state).
#ifndef BNSERVE_TESTS_SERVER_FORWARDING_MODEL_STORE_H_
#define BNSERVE_TESTS_SERVER_FORWARDING_MODEL_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/model_store.h"

namespace bnserve {
namespace testing {

class ForwardingModelStore : public ModelStore {
 public:
  // REQUIRES: `store` outlives this object.
  explicit ForwardingModelStore(ModelStore* store) : store_(store) {}

  absl::StatusOr<int> AddVersion(const v1::ModelVersion& version,
                                 const v1::Job* finished_job) override {
    return store_->AddVersion(version, finished_job);
  }
  absl::StatusOr<v1::ModelVersion> GetVersion(const std::string& model_name, int version,
                                              bool include_tensors) override {
    return store_->GetVersion(model_name, version, include_tensors);
  }
  absl::StatusOr<int> LatestVersion(const std::string& model_name) override {
    return store_->LatestVersion(model_name);
  }
  absl::StatusOr<int> ResolveAlias(const std::string& model_name,
                                   const std::string& alias) override {
    return store_->ResolveAlias(model_name, alias);
  }
  absl::StatusOr<std::vector<v1::Model>> ListModels() override { return store_->ListModels(); }
  absl::StatusOr<v1::Model> GetModel(const std::string& model_name) override {
    return store_->GetModel(model_name);
  }
  absl::Status DeleteVersion(const std::string& model_name, int version) override {
    return store_->DeleteVersion(model_name, version);
  }
  absl::Status SetAlias(const std::string& model_name, const std::string& alias,
                        int version) override {
    return store_->SetAlias(model_name, alias, version);
  }
  absl::Status DeleteAlias(const std::string& model_name, const std::string& alias) override {
    return store_->DeleteAlias(model_name, alias);
  }
  std::optional<uint64_t> CatalogGeneration() const override {
    return store_->CatalogGeneration();
  }
  absl::Status PutJob(const v1::Job& job) override { return store_->PutJob(job); }
  absl::Status AppendEpochMetrics(const std::string& job_id,
                                  const v1::EpochMetrics& metrics) override {
    return store_->AppendEpochMetrics(job_id, metrics);
  }
  absl::StatusOr<std::vector<v1::Job>> ListJobs() override { return store_->ListJobs(); }
  absl::StatusOr<int> FailUnfinishedJobs(const std::string& reason) override {
    return store_->FailUnfinishedJobs(reason);
  }
  absl::Status PutSweep(const v1::Sweep& sweep) override { return store_->PutSweep(sweep); }
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override {
    return store_->ListSweeps();
  }

 private:
  ModelStore* const store_;
};

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_SERVER_FORWARDING_MODEL_STORE_H_
