#include "server/job_manager.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
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
#include "server/exception_status.h"
#include "core/trainer.h"
#include "google/protobuf/field_mask.pb.h"
#include "google/protobuf/util/field_mask_util.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
constexpr char kRestartReason[] = "interrupted by restart";
constexpr char kWorkerLostReason[] = "worker lost: replica's lease expired";
// The lease keeper reaps expired leases every this many poll intervals.
constexpr int kReapEveryPolls = 4;

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

// `spec` as kept with a job: inline data reduced to their shape.
v1::DataSpec SpecWithoutInlineValues(const v1::DataSpec& spec) {
  if (!spec.has_inline_data()) return spec;
  v1::DataSpec kept;
  *kept.mutable_inline_data()->mutable_features()->mutable_shape() =
      spec.inline_data().features().shape();
  return kept;
}

// The request as kept with the job: every field, but inline data reduced to
// their shapes (their values may be megabytes: they are never copied).
v1::TrainRequest RecordedRequest(const v1::TrainRequest& request) {
  const google::protobuf::Descriptor* descriptor = request.GetDescriptor();
  google::protobuf::FieldMask all_but_data;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const int number = descriptor->field(i)->number();
    if (number != v1::TrainRequest::kTrainDataFieldNumber &&
        number != v1::TrainRequest::kValidationDataFieldNumber) {
      all_but_data.add_paths(descriptor->field(i)->name());
    }
  }
  v1::TrainRequest recorded;
  google::protobuf::util::FieldMaskUtil::MergeMessageTo(
      request, all_but_data, google::protobuf::util::FieldMaskUtil::MergeOptions(), &recorded);
  if (request.has_train_data()) {
    *recorded.mutable_train_data() = SpecWithoutInlineValues(request.train_data());
  }
  if (request.has_validation_data()) {
    *recorded.mutable_validation_data() = SpecWithoutInlineValues(request.validation_data());
  }
  return recorded;
}

// The serialized size of a request's inline data (what a queued job holds).
int64_t InlineDataBytes(const v1::TrainRequest& request) {
  int64_t bytes = 0;
  if (request.train_data().has_inline_data()) {
    bytes += static_cast<int64_t>(request.train_data().inline_data().ByteSizeLong());
  }
  if (request.validation_data().has_inline_data()) {
    bytes += static_cast<int64_t>(request.validation_data().inline_data().ByteSizeLong());
  }
  return bytes;
}

v1::JobEvent StateEvent(v1::JobState state) {
  v1::JobEvent event;
  event.set_state(state);
  return event;
}

v1::JobEvent EpochEvent(const v1::EpochMetrics& metrics) {
  v1::JobEvent event;
  *event.mutable_epoch() = metrics;
  return event;
}

v1::JobEvent FinishedEvent(const v1::Job& job) {
  v1::JobEvent event;
  *event.mutable_finished() = job;
  return event;
}

}  // namespace

JobManager::JobManager(ModelStore* store, ModelCatalog* catalog, DataResolver* data,
                       JobManagerOptions options)
    : store_(store),
      catalog_(catalog),
      data_(data),
      options_(options),
      limits_{options.max_epochs, options.max_job_bytes} {}

JobManager::~JobManager() { Shutdown(); }

absl::Status JobManager::Start() {
  std::vector<v1::Job> stored;
  if (shared()) {
    // Other replicas may be running the unfinished jobs: they stay as they
    // are, and the jobs stay in the store (read on demand).
    if (options_.replica_id.empty()) {
      return absl::InvalidArgumentError("a shared job queue needs a replica id");
    }
    if (options_.poll_interval <= absl::ZeroDuration() ||
        options_.lease <= options_.poll_interval * 2) {
      return absl::InvalidArgumentError(
          "the lease must be longer than two poll intervals, which must be positive");
    }
  } else {
    ASSIGN_OR_RETURN(int interrupted, store_->FailUnfinishedJobs(kRestartReason));
    if (interrupted > 0) {
      BNSERVE_LOG(WARNING) << interrupted << " job(s) were interrupted by a restart: FAILED";
    }
    ASSIGN_OR_RETURN(stored, store_->ListJobs());
  }
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
  for (const auto& [seq, record] : jobs_by_seq_) finished_seqs_.push_back(seq);
  TrimFinishedLocked();
  const int workers = std::max(1, options_.workers);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  if (shared()) lease_keeper_ = std::thread([this] { LeaseKeeperLoop(); });
  BNSERVE_LOG(INFO) << "job manager: " << jobs_.size() << " stored job(s), " << workers
                    << " worker(s), queue of " << options_.max_queue;
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::TrainRequest& request,
                                           const std::string& created_by) {
  ASSIGN_OR_RETURN(TrainingPlan plan, PlanTraining(request, limits_, *data_));
  std::vector<PlannedJob> planned;
  planned.push_back(PlannedJob{std::move(plan), RecordedRequest(request), &request});
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, QueueAll(std::move(planned), created_by));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<v1::Job>> JobManager::SubmitAll(
    const std::vector<v1::TrainRequest>& requests, const std::string& created_by) {
  if (requests.empty()) return absl::InvalidArgumentError("no training request to submit");
  std::vector<PlannedJob> planned;
  planned.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::StatusOr<TrainingPlan> plan = PlanTraining(requests[i], limits_, *data_);
    if (!plan.ok()) {
      const std::string label = requests[i].description().empty()
                                    ? absl::StrCat("request ", i)
                                    : requests[i].description();
      return absl::Status(plan.status().code(),
                          absl::StrCat(label, ": ", plan.status().message()));
    }
    planned.push_back(PlannedJob{*std::move(plan), RecordedRequest(requests[i]), &requests[i]});
  }
  return QueueAll(std::move(planned), created_by);
}

absl::StatusOr<std::vector<v1::Job>> JobManager::QueueAll(std::vector<PlannedJob> planned,
                                                          const std::string& created_by) {
  if (shared()) return EnqueueShared(std::move(planned), created_by);
  const int count = static_cast<int>(planned.size());
  int64_t data_bytes = 0;
  for (const PlannedJob& one : planned) data_bytes += InlineDataBytes(*one.full);
  absl::MutexLock lock(&mu_);
  if (stopping_ || !started_) return absl::UnavailableError("the server is shutting down");
  if (data_bytes > 0 && queued_data_bytes_ + data_bytes > options_.max_queued_data_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queued jobs' inline training data would take ",
        (queued_data_bytes_ + data_bytes) >> 20, " MiB, more than --max_queued_data_mb (",
        options_.max_queued_data_bytes >> 20, " MiB); retry later or use stored data files"));
  }
  const int waiting = static_cast<int>(queue_.size());
  if (waiting + count > options_.max_queue) {
    if (count == 1) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the training queue is full (", waiting, " jobs waiting); retry later"));
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "the training queue has room for ", std::max(0, options_.max_queue - waiting),
        " more jobs, not ", count, " (", waiting, " waiting of at most ", options_.max_queue,
        "); nothing was submitted, retry later"));
  }
  const google::protobuf::Timestamp now = TimeToProto(absl::Now());
  std::vector<std::shared_ptr<JobRecord>> records;
  records.reserve(planned.size());
  for (PlannedJob& one : planned) {
    auto record = std::make_shared<JobRecord>();
    record->seq = next_seq_ + static_cast<int64_t>(records.size());
    v1::Job& job = record->job;
    job.set_job_id(JobId(record->seq));
    job.set_model_name(one.plan.model_name);
    job.set_state(v1::QUEUED);
    *job.mutable_request() = std::move(one.recorded);
    job.set_total_epochs(one.plan.trainer.epochs);
    job.set_created_by(created_by);
    *job.mutable_created_at() = now;
    record->plan = std::make_unique<const TrainingPlan>(std::move(one.plan));
    record->queued_data_bytes = InlineDataBytes(*one.full);
    if (absl::Status stored = store_->PutJob(job); !stored.ok()) {
      // The ones stored already must not come back as interrupted jobs.
      for (const std::shared_ptr<JobRecord>& earlier : records) {
        earlier->job.set_state(v1::FAILED);
        earlier->job.set_reason(absl::StrCat("not submitted: storing ", job.job_id(),
                                             " failed: ", stored.message()));
        *earlier->job.mutable_finished_at() = now;
        PersistLocked(*earlier);
      }
      next_seq_ += static_cast<int64_t>(records.size());
      return stored;
    }
    records.push_back(std::move(record));
  }
  next_seq_ += count;
  std::vector<v1::Job> jobs;
  jobs.reserve(records.size());
  for (std::shared_ptr<JobRecord>& record : records) {
    const v1::Job& job = record->job;
    jobs_[job.job_id()] = record;
    jobs_by_seq_[record->seq] = record;
    queue_.push_back(record);
    queued_data_bytes_ += record->queued_data_bytes;
    v1::JobEvent event;
    event.set_state(v1::QUEUED);
    PublishLocked(record.get(), std::move(event));
    BNSERVE_LOG(INFO) << "queued " << job.job_id() << " for model " << job.model_name();
    jobs.push_back(job);
  }
  return jobs;
}

absl::StatusOr<std::vector<v1::Job>> JobManager::EnqueueShared(
    std::vector<PlannedJob> planned, const std::string& created_by) {
  JobQueue* queue = options_.shared_queue;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !started_) return absl::UnavailableError("the server is shutting down");
  }
  const int count = static_cast<int>(planned.size());
  ASSIGN_OR_RETURN(int64_t first, queue->ReserveJobSeqs(count));
  const google::protobuf::Timestamp now = TimeToProto(absl::Now());
  std::vector<QueuedJob> queued;
  queued.reserve(planned.size());
  for (PlannedJob& one : planned) {
    QueuedJob entry;
    v1::Job& job = entry.job;
    job.set_job_id(JobId(first + static_cast<int64_t>(queued.size())));
    job.set_model_name(one.plan.model_name);
    job.set_state(v1::QUEUED);
    *job.mutable_request() = std::move(one.recorded);
    job.set_total_epochs(one.plan.trainer.epochs);
    job.set_created_by(created_by);
    *job.mutable_created_at() = now;
    entry.full_request = *one.full;
    queued.push_back(std::move(entry));
  }
  RETURN_IF_ERROR(queue->Enqueue(queued, options_.max_queue));
  std::vector<v1::Job> jobs;
  jobs.reserve(queued.size());
  for (QueuedJob& entry : queued) {
    BNSERVE_LOG(INFO) << "queued " << entry.job.job_id() << " for model "
                      << entry.job.model_name() << " in the shared queue";
    jobs.push_back(std::move(entry.job));
  }
  absl::MutexLock lock(&mu_);
  ++claim_wakeups_;
  return jobs;
}

absl::StatusOr<v1::Job> JobManager::StoredJob(const std::string& job_id) {
  if (shared()) return options_.shared_queue->GetJob(job_id);
  {
    absl::MutexLock lock(&mu_);
    if (!evicted_) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
  }
  ASSIGN_OR_RETURN(std::vector<v1::Job> stored, store_->ListJobs());
  for (v1::Job& job : stored) {
    if (job.job_id() == job_id) return std::move(job);
  }
  return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
}

void JobManager::TrimFinishedLocked() {
  const size_t keep = static_cast<size_t>(std::max(0, options_.max_finished_jobs_in_memory));
  while (finished_seqs_.size() > keep) {
    const int64_t seq = finished_seqs_.front();
    finished_seqs_.pop_front();
    auto it = jobs_by_seq_.find(seq);
    if (it == jobs_by_seq_.end()) continue;
    switch (it->second->job.state()) {
      case v1::SUCCEEDED:
        ++evicted_stats_.succeeded;
        break;
      case v1::FAILED:
        ++evicted_stats_.failed;
        break;
      case v1::CANCELLED:
        ++evicted_stats_.cancelled;
        break;
      default:
        break;
    }
    jobs_.erase(it->second->job.job_id());
    jobs_by_seq_.erase(it);
    evicted_ = true;
    max_evicted_seq_ = std::max(max_evicted_seq_, seq);
  }
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it != jobs_.end()) return it->second->job;
  }
  return StoredJob(job_id);
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
  // Adds `job` (seq `seq`, listed newest first) or ends the page; false
  // when the page is full.
  auto add = [&](int64_t seq, const v1::Job& job) {
    if (!request.model_name().empty() && job.model_name() != request.model_name()) return true;
    if (request.state() != v1::JOB_STATE_UNSPECIFIED && job.state() != request.state()) {
      return true;
    }
    if (response.jobs_size() == page_size) {
      response.set_next_page_token(absl::StrCat(seq + 1));
      return false;
    }
    *response.add_jobs() = job;
    return true;
  };
  if (!shared()) {
    absl::MutexLock lock(&mu_);
    if (evicted_) {
      // Every job numbered above max_evicted_seq_ is in memory: a page that
      // fills before reaching it (the usual newest page) needs no store read.
      auto it = jobs_by_seq_.lower_bound(before);
      while (it != jobs_by_seq_.begin()) {
        --it;
        if (it->first <= max_evicted_seq_) break;
        if (!add(it->first, it->second->job)) return response;
      }
      response.Clear();
    }
  }
  bool from_store = shared();
  if (!from_store) {
    absl::MutexLock lock(&mu_);
    from_store = evicted_;
  }
  if (from_store) {
    // The store has every job; the ones in memory are at least as new.
    ASSIGN_OR_RETURN(std::vector<v1::Job> stored, store_->ListJobs());
    std::map<int64_t, v1::Job> merged;
    for (v1::Job& job : stored) {
      const int64_t seq = JobSeq(job.job_id());
      if (seq > 0 && seq < before) merged[seq] = std::move(job);
    }
    {
      absl::MutexLock lock(&mu_);
      for (auto it = jobs_by_seq_.begin(); it != jobs_by_seq_.lower_bound(before); ++it) {
        merged[it->first] = it->second->job;
      }
    }
    for (auto it = merged.rbegin(); it != merged.rend(); ++it) {
      if (!add(it->first, it->second)) break;
    }
    return response;
  }
  absl::MutexLock lock(&mu_);
  auto it = jobs_by_seq_.lower_bound(before);
  while (it != jobs_by_seq_.begin()) {
    --it;
    if (!add(it->first, it->second->job)) break;
  }
  return response;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  if (shared()) {
    // The store decides (a queued job is cancelled there, a running one is
    // marked); this replica's own run is stopped at once.
    ASSIGN_OR_RETURN(v1::Job job,
                     options_.shared_queue->RequestCancel(job_id, "cancelled by request"));
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it != jobs_.end() && it->second->job.state() == v1::RUNNING) {
      it->second->cancel_reason = "cancelled by request";
      it->second->cancel_requested.store(true);
      return it->second->job;
    }
    return job;
  }
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    if (!evicted_) return absl::NotFoundError(absl::StrCat("no job \"", job_id, "\""));
    // Only finished jobs leave memory.
    mu_.Unlock();
    absl::StatusOr<v1::Job> stored = StoredJob(job_id);
    mu_.Lock();
    if (!stored.ok()) return stored.status();
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " already finished (", v1::JobState_Name(stored->state()), ")"));
  }
  // Held: finishing may drop the record from the maps.
  const std::shared_ptr<JobRecord> held = it->second;
  JobRecord* record = held.get();
  if (IsTerminal(record->job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " already finished (", v1::JobState_Name(record->job.state()), ")"));
  }
  if (record->job.state() == v1::QUEUED) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), held), queue_.end());
    queued_data_bytes_ -= record->queued_data_bytes;
    record->queued_data_bytes = 0;
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
  absl::StatusOr<v1::Job> stored = absl::UnknownError("not read");
  if (it == jobs_.end()) {
    // A job of another replica, or one no longer in memory: its history
    // from the store, then (unfinished) polled by the lease keeper. (If
    // this replica claimed it meanwhile, its own record answers.)
    mu_.Unlock();
    stored = StoredJob(job_id);
    mu_.Lock();
    it = jobs_.find(job_id);
  }
  if (it == jobs_.end()) {
    if (!stored.ok()) return stored.status();
    RemoteWatch watch;
    watch.job_id = job_id;
    on_event(StateEvent(v1::QUEUED));
    if (stored->has_started_at()) {
      on_event(StateEvent(v1::RUNNING));
      watch.running_delivered = true;
    }
    for (const v1::EpochMetrics& metrics : stored->epochs()) {
      on_event(EpochEvent(metrics));
      watch.last_epoch = std::max(watch.last_epoch, metrics.epoch());
    }
    if (IsTerminal(stored->state())) {
      on_event(FinishedEvent(*stored));
      return WatchId{0};
    }
    if (!shared()) {
      return absl::InternalError(absl::StrCat("job ", job_id, " is unfinished but not held"));
    }
    const WatchId id = next_watch_id_++;
    watch.callback = std::move(on_event);
    remote_watches_.emplace(id, std::move(watch));
    return id;
  }
  JobRecord* record = it->second.get();
  for (const v1::JobEvent& event : record->events) on_event(event);
  if (IsTerminal(record->job.state())) return WatchId{0};
  const WatchId id = next_watch_id_++;
  record->watchers.emplace(id, std::move(on_event));
  return id;
}

JobStats JobManager::Stats() {
  std::optional<int64_t> shared_queued;
  if (shared()) {
    absl::StatusOr<int64_t> queued = options_.shared_queue->QueuedJobCount();
    if (queued.ok()) {
      shared_queued = *queued;
    } else {
      BNSERVE_LOG(ERROR) << "counting the shared queue failed: " << queued.status();
    }
  }
  absl::MutexLock lock(&mu_);
  JobStats stats = evicted_stats_;
  for (const auto& [seq, record] : jobs_by_seq_) {
    switch (record->job.state()) {
      case v1::QUEUED:
        ++stats.queued;
        break;
      case v1::RUNNING:
        ++stats.running;
        break;
      case v1::SUCCEEDED:
        ++stats.succeeded;
        break;
      case v1::FAILED:
        ++stats.failed;
        break;
      case v1::CANCELLED:
        ++stats.cancelled;
        break;
      default:
        break;
    }
  }
  stats.queue_depth = static_cast<int64_t>(queue_.size());
  if (shared()) {
    stats.queued = shared_queued.value_or(0);
    stats.queue_depth = stats.queued;
  }
  stats.queue_capacity = options_.max_queue;
  return stats;
}

void JobManager::Unwatch(const std::string& job_id, WatchId id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) it->second->watchers.erase(id);
  remote_watches_.erase(id);
}

void JobManager::Shutdown(const std::string& reason) {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_reason_ = reason;
      const std::deque<std::shared_ptr<JobRecord>> queued = std::move(queue_);
      queue_.clear();
      queued_data_bytes_ = 0;
      for (const std::shared_ptr<JobRecord>& record : queued) {
        FinishLocked(record.get(), v1::CANCELLED, reason);
      }
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
  if (lease_keeper_.joinable()) lease_keeper_.join();
}

std::shared_ptr<JobManager::JobRecord> JobManager::ClaimShared() {
  absl::StatusOr<std::optional<ClaimedJob>> claimed =
      options_.shared_queue->ClaimNext(options_.replica_id, options_.lease);
  if (!claimed.ok()) {
    BNSERVE_LOG(ERROR) << "claiming a job failed: " << claimed.status();
    return nullptr;
  }
  if (!claimed->has_value()) return nullptr;
  auto record = std::make_shared<JobRecord>();
  record->seq = JobSeq((*claimed)->job.job_id());
  record->job = std::move((*claimed)->job);
  record->job.set_replica(options_.replica_id);
  // Validated at Submit (on whichever replica), planned again here: a
  // failure now (e.g. a different data dir) fails the job cleanly.
  absl::StatusOr<TrainingPlan> plan =
      PlanTraining((*claimed)->full_request, limits_, *data_);
  absl::MutexLock lock(&mu_);
  jobs_[record->job.job_id()] = record;
  jobs_by_seq_[record->seq] = record;
  record->events.push_back(StateEvent(v1::QUEUED));
  record->events.push_back(StateEvent(v1::RUNNING));
  if (!plan.ok()) {
    FinishLocked(record.get(), v1::FAILED, std::string(plan.status().message()));
    return nullptr;
  }
  record->plan = std::make_unique<const TrainingPlan>(*std::move(plan));
  if (stopping_) {
    record->cancel_reason = stop_reason_;
    record->cancel_requested.store(true);
  }
  return record;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<JobRecord> record;
    if (shared()) {
      int64_t wakeups = 0;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        wakeups = claim_wakeups_;
      }
      record = ClaimShared();
      if (record == nullptr) {
        absl::MutexLock lock(&mu_);
        auto woken = [this, wakeups]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || claim_wakeups_ != wakeups;
        };
        mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
        continue;
      }
    } else {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      record = queue_.front();
      queue_.pop_front();
      queued_data_bytes_ -= record->queued_data_bytes;
      record->queued_data_bytes = 0;
      record->job.set_state(v1::RUNNING);
      *record->job.mutable_started_at() = TimeToProto(absl::Now());
      PersistLocked(*record);
      v1::JobEvent event;
      event.set_state(v1::RUNNING);
      PublishLocked(record.get(), std::move(event));
    }
    BNSERVE_LOG(INFO) << "running " << record->job.job_id();
    // An exception (an allocation failing in a network larger than the
    // memory left) fails the job, not the process.
    const absl::Status ran = StatusFromExceptions(
        absl::StrCat("training job ", record->job.job_id()), [&] {
          RunJob(record);
          return absl::OkStatus();
        });
    if (!ran.ok()) {
      absl::MutexLock lock(&mu_);
      if (record->job.state() == v1::RUNNING) {
        FinishLocked(record.get(), v1::FAILED, std::string(ran.message()));
      }
    }
  }
}

void JobManager::RunJob(const std::shared_ptr<JobRecord>& record) {
  // Only this worker reads the plan until the job finishes.
  const TrainingPlan& plan = *record->plan;
  const int num_classes = plan.network.output_size;
  absl::StatusOr<std::shared_ptr<const Dataset>> train =
      data_->Resolve(plan.train_data, num_classes);
  if (!train.ok()) {
    return Finish(record.get(), v1::FAILED,
                  absl::StrCat("train_data: ", train.status().message()));
  }
  std::shared_ptr<const Dataset> validation = std::make_shared<const Dataset>();
  if (plan.validation_data.has_value()) {
    absl::StatusOr<std::shared_ptr<const Dataset>> loaded =
        data_->Resolve(*plan.validation_data, num_classes);
    if (!loaded.ok()) {
      return Finish(record.get(), v1::FAILED,
                    absl::StrCat("validation_data: ", loaded.status().message()));
    }
    validation = *std::move(loaded);
  }
  // The input size (if it was open) and the memory at the data's real size.
  absl::StatusOr<NetworkConfig> config = NetworkForData(plan, **train, *validation, limits_);
  if (!config.ok()) {
    return Finish(record.get(), v1::FAILED, std::string(config.status().message()));
  }
  absl::StatusOr<Network<float>> network = Network<float>::Create(*config, plan.trainer.seed);
  if (!network.ok()) {
    return Finish(record.get(), v1::FAILED, std::string(network.status().message()));
  }

  const int64_t rows_per_epoch = RowsPerEpoch(plan.trainer.batch_size, (*train)->size());
  // An epoch whose metrics cannot be stored (a full disk) ends the job there,
  // FAILED: the job keeps only the epochs the store holds, so what it reports
  // and what a restart reads back agree. Only this worker thread touches it.
  absl::Status metrics_not_stored;
  auto on_epoch = [this, &record, &plan, rows_per_epoch,
                   &metrics_not_stored](const EpochMetrics& metrics) {
    if (options_.on_epoch_finished) {
      options_.on_epoch_finished(FinishedEpoch{record->job.job_id(), plan.model_name,
                                               metrics.epoch, rows_per_epoch, metrics.seconds});
    }
    const v1::EpochMetrics proto = EpochMetricsToProto(metrics);
    absl::MutexLock lock(&mu_);
    absl::Status stored = store_->AppendEpochMetrics(record->job.job_id(), proto);
    if (!stored.ok()) {
      BNSERVE_LOG(ERROR) << record->job.job_id() << ": storing epoch " << metrics.epoch
                         << "'s metrics failed: " << stored;
      metrics_not_stored = absl::Status(
          stored.code(), absl::StrCat("storing epoch ", metrics.epoch,
                                      "'s metrics failed: ", stored.message()));
      return;
    }
    *record->job.add_epochs() = proto;
    v1::JobEvent event;
    *event.mutable_epoch() = proto;
    PublishLocked(record.get(), std::move(event));
  };
  auto cancelled = [&record, &metrics_not_stored]() {
    return record->cancel_requested.load() || !metrics_not_stored.ok();
  };
  absl::StatusOr<std::vector<EpochMetrics>> trained =
      Train(&*network, **train, *validation, plan.trainer, on_epoch, cancelled);
  if (!metrics_not_stored.ok()) {
    return Finish(record.get(), v1::FAILED, std::string(metrics_not_stored.message()));
  }
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

  v1::ModelVersion metadata;
  metadata.set_model_name(plan.model_name);
  metadata.set_job_id(record->job.job_id());
  if (!trained->empty()) *metadata.mutable_final_metrics() = EpochMetricsToProto(trained->back());
  Succeed(record.get(), *network, std::move(metadata));
}

void JobManager::Succeed(JobRecord* record, const Network<float>& network,
                         v1::ModelVersion metadata) {
  v1::Job finished;
  {
    absl::MutexLock lock(&mu_);
    finished = record->job;
    record->finishing = true;
  }
  *metadata.mutable_training() = finished.request();
  metadata.set_created_by(finished.created_by());
  finished.set_state(v1::SUCCEEDED);
  finished.clear_reason();
  *finished.mutable_finished_at() = TimeToProto(absl::Now());
  // Outside mu_: registering writes every tensor to the database, which for
  // a large model takes long enough to stall every GetJob / ListJobs /
  // WatchJob handler waiting on the lock. Only this worker changes a RUNNING
  // job (Cancel and Shutdown merely set its flag).
  absl::StatusOr<v1::ModelVersion> registered =
      catalog_->RegisterNetwork(network, std::move(metadata), &finished);
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
  record->plan.reset();
  BNSERVE_LOG(INFO) << record->job.job_id() << " succeeded: " << record->job.model_name()
                    << " version " << record->job.model_version();
  v1::JobEvent event;
  *event.mutable_finished() = record->job;
  PublishLocked(record, std::move(event));
  record->watchers.clear();
  finished_seqs_.push_back(record->seq);
  TrimFinishedLocked();
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
  record->plan.reset();
  if (absl::Status stored = store_->PutJob(record->job); !stored.ok()) {
    BNSERVE_LOG(ERROR) << record->job.job_id() << ": storing the job failed: " << stored;
    if (shared() && stored.code() == absl::StatusCode::kFailedPrecondition) {
      // The lease was lost (reaped): the store's state is the job's.
      absl::StatusOr<v1::Job> current = options_.shared_queue->GetJob(record->job.job_id());
      if (current.ok()) record->job = *std::move(current);
    }
  }
  BNSERVE_LOG(INFO) << record->job.job_id() << " " << v1::JobState_Name(record->job.state())
                    << ": " << record->job.reason();
  v1::JobEvent event;
  *event.mutable_finished() = record->job;
  PublishLocked(record, std::move(event));
  record->watchers.clear();
  finished_seqs_.push_back(record->seq);
  TrimFinishedLocked();
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

void JobManager::LeaseKeeperLoop() {
  for (int round = 0;; ++round) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.poll_interval)) return;
    }
    RenewLeases();
    if (round % kReapEveryPolls == 0) {
      absl::StatusOr<std::vector<v1::Job>> reaped =
          options_.shared_queue->ReapExpiredLeases(kWorkerLostReason);
      if (!reaped.ok()) {
        BNSERVE_LOG(ERROR) << "reaping expired leases failed: " << reaped.status();
      } else {
        for (const v1::Job& job : *reaped) {
          BNSERVE_LOG(WARNING) << job.job_id() << " of replica \"" << job.replica()
                               << "\" FAILED: " << job.reason();
        }
      }
    }
    PollRemoteWatches();
  }
}

void JobManager::RenewLeases() {
  // The ids are copied under mu_: the worker changes its job meanwhile.
  std::vector<std::pair<std::shared_ptr<JobRecord>, std::string>> running;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [seq, record] : jobs_by_seq_) {
      if (record->job.state() == v1::RUNNING && !record->lease_lost && !record->finishing) {
        running.emplace_back(record, record->job.job_id());
      }
    }
  }
  for (const auto& [record, job_id] : running) {
    absl::StatusOr<LeaseRenewal> renewal =
        options_.shared_queue->RenewLease(job_id, options_.replica_id, options_.lease);
    absl::MutexLock lock(&mu_);
    // Its final state may be stored already: nothing left to renew.
    if (record->finishing) continue;
    if (renewal.ok()) {
      if (renewal->cancel_requested && !record->cancel_requested.load()) {
        record->cancel_reason = renewal->cancel_reason;
        record->cancel_requested.store(true);
      }
    } else if (renewal.status().code() == absl::StatusCode::kFailedPrecondition &&
               record->job.state() == v1::RUNNING) {
      // Reaped: stop the run; the store refuses its final state and version.
      BNSERVE_LOG(WARNING) << record->job.job_id() << ": " << renewal.status();
      record->lease_lost = true;
      record->cancel_reason = "lease lost";
      record->cancel_requested.store(true);
    } else if (record->job.state() == v1::RUNNING) {
      BNSERVE_LOG(ERROR) << record->job.job_id()
                         << ": renewing the lease failed: " << renewal.status();
    }
  }
}

bool JobManager::HandOverLocked(WatchId id, RemoteWatch* watch) {
  auto local = jobs_.find(watch->job_id);
  if (local == jobs_.end()) return false;
  JobRecord* record = local->second.get();
  for (const v1::JobEvent& event : record->events) {
    if (event.event_case() == v1::JobEvent::kState) {
      if (event.state() == v1::RUNNING && !watch->running_delivered) {
        watch->callback(event);
        watch->running_delivered = true;
      }
    } else if (event.has_epoch()) {
      if (event.epoch().epoch() > watch->last_epoch) {
        watch->callback(event);
        watch->last_epoch = event.epoch().epoch();
      }
    } else if (event.has_finished()) {
      watch->callback(event);
    }
  }
  if (!IsTerminal(record->job.state())) record->watchers.emplace(id, std::move(watch->callback));
  return true;
}

void JobManager::PollRemoteWatches() {
  std::vector<std::pair<WatchId, std::string>> watched;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = remote_watches_.begin(); it != remote_watches_.end();) {
      if (HandOverLocked(it->first, &it->second)) {
        it = remote_watches_.erase(it);
      } else {
        watched.emplace_back(it->first, it->second.job_id);
        ++it;
      }
    }
  }
  for (const auto& [id, job_id] : watched) {
    // One read of the job gives a consistent state and epochs.
    absl::StatusOr<v1::Job> job = StoredJob(job_id);
    if (!job.ok()) {
      BNSERVE_LOG(ERROR) << "polling " << job_id << " for a watcher failed: " << job.status();
      continue;
    }
    absl::MutexLock lock(&mu_);
    auto it = remote_watches_.find(id);
    if (it == remote_watches_.end()) continue;  // unwatched meanwhile
    RemoteWatch& watch = it->second;
    if (HandOverLocked(id, &watch)) {  // claimed here meanwhile
      remote_watches_.erase(it);
      continue;
    }
    if (!watch.running_delivered && job->has_started_at()) {
      watch.callback(StateEvent(v1::RUNNING));
      watch.running_delivered = true;
    }
    for (const v1::EpochMetrics& metrics : job->epochs()) {
      if (metrics.epoch() <= watch.last_epoch) continue;
      watch.callback(EpochEvent(metrics));
      watch.last_epoch = metrics.epoch();
    }
    if (IsTerminal(job->state())) {
      watch.callback(FinishedEvent(*job));
      remote_watches_.erase(it);
    }
  }
}

}  // namespace bnserve
