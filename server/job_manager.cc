#include "server/job_manager.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/logging.h"
#include "core/network.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
constexpr char kRestartReason[] = "interrupted by restart";

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// The job id of sequence number `seq`: "job-000001".
std::string JobId(int64_t seq) { return absl::StrFormat("job-%06d", seq); }

// The sequence number of a job id, or 0 if it is not one of ours.
int64_t JobSeq(const std::string& job_id) {
  int64_t seq = 0;
  if (job_id.rfind("job-", 0) != 0 || !absl::SimpleAtoi(job_id.substr(4), &seq)) return 0;
  return seq;
}

// The request as kept with the job: inline data reduced to their shapes.
// Inline values may be megabytes: they are swapped out of `request` while it
// is copied and swapped back, so that `request` ends as it was, uncopied.
v1::TrainRequest WithoutInlineValues(v1::TrainRequest* request) {
  std::vector<std::pair<google::protobuf::RepeatedField<float>,
                        google::protobuf::RepeatedField<int32_t>>> held;
  std::vector<v1::InlineData*> inline_data;
  if (request->train_data().has_inline_data()) {
    inline_data.push_back(request->mutable_train_data()->mutable_inline_data());
  }
  if (request->validation_data().has_inline_data()) {
    inline_data.push_back(request->mutable_validation_data()->mutable_inline_data());
  }
  for (v1::InlineData* data : inline_data) {
    held.emplace_back();
    held.back().first.Swap(data->mutable_features()->mutable_values());
    held.back().second.Swap(data->mutable_labels());
  }
  v1::TrainRequest stripped = *request;
  for (size_t i = 0; i < inline_data.size(); ++i) {
    held[i].first.Swap(inline_data[i]->mutable_features()->mutable_values());
    held[i].second.Swap(inline_data[i]->mutable_labels());
  }
  return stripped;
}

}  // namespace

JobManager::JobManager(ModelStore* store, ModelCatalog* catalog, DataResolver* data,
                       JobManagerOptions options)
    : store_(store), catalog_(catalog), data_(data), options_(options) {}

JobManager::~JobManager() { Shutdown(); }

absl::Status JobManager::Start() {
  ASSIGN_OR_RETURN(int interrupted, store_->FailUnfinishedJobs(kRestartReason));
  if (interrupted > 0) {
    BNSERVE_LOG(WARNING) << interrupted << " job(s) were interrupted by a restart: FAILED";
  }
  ASSIGN_OR_RETURN(std::vector<v1::Job> stored, store_->ListJobs());
  absl::MutexLock lock(&mu_);
  if (started_) return absl::FailedPreconditionError("JobManager already started");
  started_ = true;
  for (v1::Job& job : stored) {
    auto record = std::make_shared<JobRecord>();
    record->seq = JobSeq(job.job_id());
    if (record->seq <= 0) {
      BNSERVE_LOG(WARNING) << "ignoring stored job with a foreign id " << job.job_id();
      continue;
    }
    for (const v1::EpochMetrics& metrics : job.epochs()) {
      v1::JobEvent event;
      *event.mutable_epoch() = metrics;
      record->events.push_back(std::move(event));
    }
    v1::JobEvent finished;
    *finished.mutable_finished() = job;
    record->events.push_back(std::move(finished));
    record->job = std::move(job);
    next_seq_ = std::max(next_seq_, record->seq + 1);
    jobs_[record->job.job_id()] = record;
    jobs_by_seq_[record->seq] = record;
  }
  const int workers = std::max(1, options_.workers);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  BNSERVE_LOG(INFO) << "job manager: " << jobs_.size() << " stored job(s), " << workers
                    << " worker(s), queue of " << options_.max_queue;
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::TrainRequest& request) {
  RETURN_IF_ERROR(ModelCatalog::ValidateModelName(request.model_name()));
  if (!request.has_train_data()) {
    return absl::InvalidArgumentError("train_data is required");
  }
  int default_input_size = 1;  // a placeholder: the real one comes with the data
  if (request.train_data().has_inline_data() &&
      request.train_data().inline_data().features().shape_size() == 2) {
    default_input_size =
        static_cast<int>(request.train_data().inline_data().features().shape(1));
  }
  ASSIGN_OR_RETURN(NetworkConfig network,
                   NetworkConfigFromProto(request.network(), default_input_size));
  RETURN_IF_ERROR(OptimizerConfigFromProto(request.optimizer()).status());
  if (request.epochs() < 0 || request.epochs() > options_.max_epochs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "epochs must be in [1, ", options_.max_epochs, "] (0: ", kDefaultEpochs, "), got ",
        request.epochs()));
  }
  if (request.batch_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be positive (0: ", kDefaultBatchSize, "), got ",
                     request.batch_size()));
  }
  if (request.batch_size() == 1 && network.use_batchnorm) {
    return absl::InvalidArgumentError(
        "batch_size must be at least 2 with BatchNorm (batch statistics of one sample)");
  }
  RETURN_IF_ERROR(CheckJobMemory(
      network, request.batch_size() == 0 ? kDefaultBatchSize : request.batch_size()));
  RETURN_IF_ERROR(data_->Check(request.train_data(), network.output_size));
  if (request.has_validation_data()) {
    absl::Status status = data_->Check(request.validation_data(), network.output_size);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("validation_data: ", status.message()));
    }
  }
  for (const v1::DataSpec* spec : {&request.train_data(), &request.validation_data()}) {
    if (spec->has_inline_data() && spec->inline_data().features().shape(1) != network.input_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "network.input_size is ", network.input_size, " but the inline data have ",
          spec->inline_data().features().shape(1), " features"));
    }
  }

  absl::MutexLock lock(&mu_);
  if (stopping_ || !started_) return absl::UnavailableError("the server is shutting down");
  if (static_cast<int>(queue_.size()) >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the training queue is full (", queue_.size(), " jobs waiting); retry later"));
  }
  auto record = std::make_shared<JobRecord>();
  record->seq = next_seq_;
  record->request = request;
  v1::Job& job = record->job;
  job.set_job_id(JobId(record->seq));
  job.set_model_name(request.model_name());
  job.set_state(v1::QUEUED);
  *job.mutable_request() = WithoutInlineValues(&record->request);
  job.set_total_epochs(request.epochs() == 0 ? kDefaultEpochs : request.epochs());
  *job.mutable_created_at() = TimeToProto(absl::Now());
  RETURN_IF_ERROR(store_->PutJob(job));
  ++next_seq_;
  jobs_[job.job_id()] = record;
  jobs_by_seq_[record->seq] = record;
  queue_.push_back(record);
  v1::JobEvent event;
  event.set_state(v1::QUEUED);
  PublishLocked(record.get(), std::move(event));
  BNSERVE_LOG(INFO) << "queued " << job.job_id() << " for model " << job.model_name();
  return job;
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
  return it->second->job;
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(const v1::ListJobsRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be >= 0, got ", request.page_size()));
  }
  const int page_size =
      request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  int64_t before = INT64_MAX;  // list jobs with seq < before
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &before) || before <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad page_token \"", request.page_token(), "\""));
  }
  v1::ListJobsResponse response;
  absl::MutexLock lock(&mu_);
  auto it = jobs_by_seq_.lower_bound(before);
  while (it != jobs_by_seq_.begin()) {
    --it;
    const v1::Job& job = it->second->job;
    if (!request.model_name().empty() && job.model_name() != request.model_name()) continue;
    if (request.state() != v1::JOB_STATE_UNSPECIFIED && job.state() != request.state()) continue;
    if (response.jobs_size() == page_size) {
      response.set_next_page_token(absl::StrCat(it->first + 1));
      break;
    }
    *response.add_jobs() = job;
  }
  return response;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
  JobRecord* record = it->second.get();
  if (IsTerminal(record->job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " already finished (", v1::JobState_Name(record->job.state()), ")"));
  }
  if (record->job.state() == v1::QUEUED) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), it->second), queue_.end());
    FinishLocked(record, v1::CANCELLED, "cancelled by request");
  } else {
    record->cancel_reason = "cancelled by request";
    record->cancel_requested.store(true);
  }
  return record->job;
}

absl::StatusOr<JobManager::WatchId> JobManager::Watch(const std::string& job_id,
                                                      WatchCallback on_event) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
  JobRecord* record = it->second.get();
  for (const v1::JobEvent& event : record->events) on_event(event);
  if (IsTerminal(record->job.state())) return WatchId{0};
  const WatchId id = next_watch_id_++;
  record->watchers.emplace(id, std::move(on_event));
  return id;
}

void JobManager::Unwatch(const std::string& job_id, WatchId id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) it->second->watchers.erase(id);
}

void JobManager::Shutdown(const std::string& reason) {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      for (const std::shared_ptr<JobRecord>& record : queue_) {
        FinishLocked(record.get(), v1::CANCELLED, reason);
      }
      queue_.clear();
      for (auto& [seq, record] : jobs_by_seq_) {
        if (record->job.state() == v1::RUNNING) {
          record->cancel_reason = reason;
          record->cancel_requested.store(true);
        }
      }
    }
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
}

void JobManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<JobRecord> record;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      record = queue_.front();
      queue_.pop_front();
      record->job.set_state(v1::RUNNING);
      *record->job.mutable_started_at() = TimeToProto(absl::Now());
      PersistLocked(*record);
      v1::JobEvent event;
      event.set_state(v1::RUNNING);
      PublishLocked(record.get(), std::move(event));
    }
    BNSERVE_LOG(INFO) << "running " << record->job.job_id();
    RunJob(record);
  }
}

void JobManager::RunJob(const std::shared_ptr<JobRecord>& record) {
  // Only this worker touches `request` until the job finishes.
  const v1::TrainRequest& request = record->request;
  const int num_classes = request.network().output_size() != 0 ? request.network().output_size() : 10;
  absl::StatusOr<std::shared_ptr<const Dataset>> train =
      data_->Resolve(request.train_data(), num_classes);
  if (!train.ok()) {
    return Finish(record.get(), v1::FAILED,
                  absl::StrCat("train_data: ", train.status().message()));
  }
  std::shared_ptr<const Dataset> validation = std::make_shared<const Dataset>();
  if (request.has_validation_data()) {
    absl::StatusOr<std::shared_ptr<const Dataset>> loaded =
        data_->Resolve(request.validation_data(), num_classes);
    if (!loaded.ok()) {
      return Finish(record.get(), v1::FAILED,
                    absl::StrCat("validation_data: ", loaded.status().message()));
    }
    validation = *std::move(loaded);
  }
  absl::StatusOr<NetworkConfig> config =
      NetworkConfigFromProto(request.network(), (*train)->feature_size());
  if (!config.ok()) return Finish(record.get(), v1::FAILED, config.status().ToString());
  for (const Dataset* data : {train->get(), validation.get()}) {
    if (data->size() > 0 && data->feature_size() != config->input_size) {
      return Finish(record.get(), v1::FAILED,
                    absl::StrCat("network.input_size is ", config->input_size, " but ",
                                 data->name, " has ", data->feature_size(), " features"));
    }
  }
  TrainerOptions options;
  options.batch_size = request.batch_size() == 0 ? kDefaultBatchSize : request.batch_size();
  // Submit checked with a placeholder input size when the data had not been
  // read; now the network's real shape is known.
  if (absl::Status memory = CheckJobMemory(*config, options.batch_size); !memory.ok()) {
    return Finish(record.get(), v1::FAILED, std::string(memory.message()));
  }
  options.epochs = request.epochs() == 0 ? kDefaultEpochs : request.epochs();
  options.seed = request.seed();
  absl::StatusOr<OptimizerConfig> optimizer = OptimizerConfigFromProto(request.optimizer());
  if (!optimizer.ok()) return Finish(record.get(), v1::FAILED, optimizer.status().ToString());
  options.optimizer = *optimizer;
  absl::StatusOr<Network<float>> network = Network<float>::Create(*config, request.seed());
  if (!network.ok()) {
    return Finish(record.get(), v1::FAILED, std::string(network.status().message()));
  }

  auto on_epoch = [this, &record](const EpochMetrics& metrics) {
    const v1::EpochMetrics proto = EpochMetricsToProto(metrics);
    absl::MutexLock lock(&mu_);
    *record->job.add_epochs() = proto;
    absl::Status stored = store_->AppendEpochMetrics(record->job.job_id(), proto);
    if (!stored.ok()) {
      BNSERVE_LOG(ERROR) << record->job.job_id() << ": storing epoch metrics failed: " << stored;
    }
    v1::JobEvent event;
    *event.mutable_epoch() = proto;
    PublishLocked(record.get(), std::move(event));
  };
  auto cancelled = [&record]() { return record->cancel_requested.load(); };
  absl::StatusOr<std::vector<EpochMetrics>> trained =
      Train(&*network, **train, *validation, options, on_epoch, cancelled);
  if (!trained.ok()) {
    if (trained.status().code() == absl::StatusCode::kCancelled) {
      std::string reason;
      {
        absl::MutexLock lock(&mu_);
        reason = record->cancel_reason;
      }
      return Finish(record.get(), v1::CANCELLED, reason);
    }
    return Finish(record.get(), v1::FAILED, std::string(trained.status().message()));
  }

  v1::ModelVersion version;
  version.set_model_name(request.model_name());
  *version.mutable_network() = NetworkConfigToProto(*config);
  version.set_job_id(record->job.job_id());
  if (!trained->empty()) *version.mutable_final_metrics() = EpochMetricsToProto(trained->back());
  TensorsToProto(network->ExportTensors(), version.mutable_tensors());
  Succeed(record.get(), std::move(version));
}

absl::Status JobManager::CheckJobMemory(const NetworkConfig& network, int batch_size) const {
  const int64_t bytes = EstimateTrainingBytes(network, batch_size);
  if (bytes <= options_.max_job_bytes) return absl::OkStatus();
  constexpr int64_t kMiB = int64_t{1} << 20;
  return absl::ResourceExhaustedError(absl::StrCat(
      "the job would need about ", bytes / kMiB, " MiB of memory (a network of ",
      NetworkParameterCount(network), " parameters, batch_size ", batch_size,
      "), more than the server's limit of ", options_.max_job_bytes / kMiB,
      " MiB; use a smaller batch_size or network"));
}

void JobManager::Succeed(JobRecord* record, v1::ModelVersion version) {
  v1::Job finished;
  {
    absl::MutexLock lock(&mu_);
    finished = record->job;
  }
  *version.mutable_training() = finished.request();
  finished.set_state(v1::SUCCEEDED);
  finished.clear_reason();
  *finished.mutable_finished_at() = TimeToProto(absl::Now());
  // Outside mu_: registering rebuilds the network and writes every tensor to
  // the database, which for a large model takes long enough to stall every
  // GetJob / ListJobs / WatchJob handler waiting on the lock. Only this
  // worker changes a RUNNING job (Cancel and Shutdown merely set its flag).
  absl::StatusOr<v1::ModelVersion> registered = catalog_->Register(version, &finished);
  absl::MutexLock lock(&mu_);
  if (!registered.ok()) {
    BNSERVE_LOG(ERROR) << record->job.job_id() << ": registering the model failed: "
                       << registered.status();
    FinishLocked(record, v1::FAILED,
                 absl::StrCat("registering the model failed: ", registered.status().message()));
    return;
  }
  finished.set_model_version(registered->version());
  record->job = std::move(finished);
  record->request.Clear();
  BNSERVE_LOG(INFO) << record->job.job_id() << " succeeded: " << record->job.model_name()
                    << " version " << record->job.model_version();
  v1::JobEvent event;
  *event.mutable_finished() = record->job;
  PublishLocked(record, std::move(event));
  record->watchers.clear();
}

void JobManager::Finish(JobRecord* record, v1::JobState state, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  FinishLocked(record, state, reason);
}

void JobManager::FinishLocked(JobRecord* record, v1::JobState state,
                              const std::string& reason) {
  record->job.set_state(state);
  record->job.set_reason(reason);
  *record->job.mutable_finished_at() = TimeToProto(absl::Now());
  record->request.Clear();
  PersistLocked(*record);
  BNSERVE_LOG(INFO) << record->job.job_id() << " " << v1::JobState_Name(state) << ": "
                    << reason;
  v1::JobEvent event;
  *event.mutable_finished() = record->job;
  PublishLocked(record, std::move(event));
  record->watchers.clear();
}

void JobManager::PersistLocked(const JobRecord& record) {
  absl::Status status = store_->PutJob(record.job);
  if (!status.ok()) {
    BNSERVE_LOG(ERROR) << record.job.job_id() << ": storing the job failed: " << status;
  }
}

void JobManager::PublishLocked(JobRecord* record, v1::JobEvent event) {
  record->events.push_back(std::move(event));
  const v1::JobEvent& published = record->events.back();
  for (auto& [id, callback] : record->watchers) callback(published);
}

}  // namespace bnserve
