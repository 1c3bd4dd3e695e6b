#include "server/sweep_manager.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/logging.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// The sweep id of sequence number `seq`: "sweep-000001".
std::string SweepId(int64_t seq) { return absl::StrFormat("sweep-%06d", seq); }

// The sequence number of a sweep id, or 0 if it is not one of ours.
int64_t SweepSeq(const std::string& sweep_id) {
  int64_t seq = 0;
  if (sweep_id.rfind("sweep-", 0) != 0 || !absl::SimpleAtoi(sweep_id.substr(6), &seq)) return 0;
  return seq;
}

absl::Status NoSuchSweep(const std::string& sweep_id) {
  return absl::NotFoundError(absl::StrCat("no sweep \"", sweep_id, "\""));
}

// InvalidArgument unless every value of the axis is finite and > 0.
absl::Status CheckPositive(const google::protobuf::RepeatedField<double>& values,
                           const char* axis) {
  for (int i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]) || values[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(axis, "[", i, "] must be finite and > 0, got ", values[i]));
    }
  }
  return absl::OkStatus();
}

// `spec` without its inline values: only their shape (as jobs keep them).
void DropInlineValues(v1::DataSpec* spec) {
  if (!spec->has_inline_data()) return;
  v1::Tensor shape_only;
  *shape_only.mutable_shape() = spec->inline_data().features().shape();
  spec->clear_inline_data();
  *spec->mutable_inline_data()->mutable_features() = std::move(shape_only);
}

// Copies a finished job's outcome into its point.
void SetPointFromJob(const v1::Job& job, v1::SweepPoint* point) {
  point->set_state(job.state());
  *point->mutable_epochs() = job.epochs();
  point->set_model_version(job.model_version());
  point->set_reason(job.reason());
}

}  // namespace

// One WatchSweep: the JobManager watches of its points' jobs and what they
// have delivered. History events of a point arrive on the thread that calls
// Watch, inside JobManager::Watch; live events arrive on the workers' threads
// and are held back until every point's history has been delivered.
struct SweepManager::WatchState {
  absl::Mutex mu;
  WatchCallback on_event ABSL_GUARDED_BY(mu);
  // The sweep as stored; each point's outcome filled in from its job's
  // `finished` event.
  v1::Sweep sweep ABSL_GUARDED_BY(mu);
  std::vector<JobManager::WatchId> job_watches ABSL_GUARDED_BY(mu);
  // While Watch replays a point's history: that point, on that thread.
  int replaying_point ABSL_GUARDED_BY(mu) = -1;
  std::thread::id setup_thread ABSL_GUARDED_BY(mu);
  bool setup_done ABSL_GUARDED_BY(mu) = false;
  std::deque<v1::SweepEvent> held_back ABSL_GUARDED_BY(mu);
  int finished_points ABSL_GUARDED_BY(mu) = 0;
  bool sent_final ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;

  // A JobManager watch callback (under the JobManager's lock).
  void OnJobEvent(int point, const v1::JobEvent& job_event) {
    absl::MutexLock lock(&mu);
    if (stopped) return;
    v1::SweepEvent event;
    event.set_point(point);
    event.set_job_id(sweep.points(point).job_id());
    *event.mutable_job_event() = job_event;
    if (job_event.has_finished()) {
      SetPointFromJob(job_event.finished(), sweep.mutable_points(point));
      ++finished_points;
    }
    const bool history = point == replaying_point && std::this_thread::get_id() == setup_thread;
    if (!history && !setup_done) {
      held_back.push_back(std::move(event));
      return;
    }
    on_event(event);
    SendFinalIfDoneLocked();
  }

  // Every point's history is out: the held-back live events follow.
  void EndSetup() {
    absl::MutexLock lock(&mu);
    setup_done = true;
    if (stopped) return;
    while (!held_back.empty()) {
      on_event(held_back.front());
      held_back.pop_front();
    }
    SendFinalIfDoneLocked();
  }

  void SendFinalIfDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (sent_final || !setup_done || finished_points < sweep.points_size()) return;
    sent_final = true;
    v1::SweepEvent last;
    sweep.set_finished_points(finished_points);
    *last.mutable_finished() = sweep;
    on_event(last);
  }
};

SweepManager::SweepManager(ModelStore* store, JobManager* jobs, SweepManagerOptions options)
    : store_(store), jobs_(jobs), options_(options) {}

SweepManager::~SweepManager() {
  std::vector<WatchId> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, state] : watches_) ids.push_back(id);
  }
  for (WatchId id : ids) Unwatch(id);
}

absl::Status SweepManager::Start() {
  ASSIGN_OR_RETURN(std::vector<v1::Sweep> stored, store_->ListSweeps());
  absl::MutexLock lock(&mu_);
  if (started_) return absl::FailedPreconditionError("SweepManager already started");
  started_ = true;
  AddStoredLocked(std::move(stored));
  BNSERVE_LOG(INFO) << "sweep manager: " << sweeps_.size() << " stored sweep(s)";
  return absl::OkStatus();
}

void SweepManager::AddStoredLocked(std::vector<v1::Sweep> stored) {
  for (v1::Sweep& sweep : stored) {
    if (sweeps_.contains(sweep.sweep_id())) continue;
    auto record = std::make_shared<SweepRecord>();
    record->seq = SweepSeq(sweep.sweep_id());
    if (record->seq <= 0) {
      BNSERVE_LOG(WARNING) << "ignoring stored sweep with a foreign id " << sweep.sweep_id();
      continue;
    }
    record->sweep = std::move(sweep);
    next_seq_ = std::max(next_seq_, record->seq + 1);
    sweeps_[record->sweep.sweep_id()] = record;
    sweeps_by_seq_[record->seq] = record;
  }
}

absl::Status SweepManager::ReloadShared() {
  if (options_.shared_queue == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<v1::Sweep> stored, store_->ListSweeps());
  absl::MutexLock lock(&mu_);
  AddStoredLocked(std::move(stored));
  return absl::OkStatus();
}

absl::StatusOr<v1::Sweep> SweepManager::StartSweep(const v1::StartSweepRequest& request,
                                                   const std::string& created_by) {
  RETURN_IF_ERROR(CheckPositive(request.weight_init_stds(), "weight_init_stds"));
  RETURN_IF_ERROR(CheckPositive(request.learning_rates(), "learning_rates"));
  const int64_t stds = std::max(1, request.weight_init_stds_size());
  const int64_t batchnorms = std::max(1, request.use_batchnorm_size());
  const int64_t rates = std::max(1, request.learning_rates_size());
  // Each axis is at most a repeated field's size: the product fits.
  const int64_t count = stds * batchnorms * rates;
  if (count > options_.max_points) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the sweep has ", count, " points; the server's maximum is ", options_.max_points));
  }
  const v1::TrainRequest& base = request.base();
  const double base_std = base.network().weight_init().kind() == v1::WeightInit::STD
                              ? base.network().weight_init().std()
                              : 0.0;
  const bool base_batchnorm = !base.network().has_use_batchnorm() || base.network().use_batchnorm();
  const double base_rate =
      base.optimizer().has_learning_rate() ? base.optimizer().learning_rate() : 0.0;

  absl::MutexLock start_lock(&start_mu_);
  int64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!started_) return absl::UnavailableError("the sweep manager is not started");
    seq = next_seq_;
  }
  if (options_.shared_queue != nullptr) {
    ASSIGN_OR_RETURN(seq, options_.shared_queue->ReserveJobSeqs(1));
  }
  const std::string sweep_id = SweepId(seq);
  v1::Sweep sweep;
  sweep.set_sweep_id(sweep_id);
  std::vector<v1::TrainRequest> requests;
  requests.reserve(count);
  for (int64_t s = 0; s < stds; ++s) {
    for (int64_t b = 0; b < batchnorms; ++b) {
      for (int64_t r = 0; r < rates; ++r) {
        v1::SweepPoint* point = sweep.add_points();
        requests.push_back(base);
        v1::TrainRequest& point_request = requests.back();
        point->set_weight_init_std(base_std);
        point->set_use_batchnorm(base_batchnorm);
        point->set_learning_rate(base_rate);
        if (request.weight_init_stds_size() > 0) {
          point->set_weight_init_std(request.weight_init_stds(s));
          v1::WeightInit* init = point_request.mutable_network()->mutable_weight_init();
          init->set_kind(v1::WeightInit::STD);
          init->set_std(point->weight_init_std());
        }
        if (request.use_batchnorm_size() > 0) {
          point->set_use_batchnorm(request.use_batchnorm(b));
          point_request.mutable_network()->set_use_batchnorm(point->use_batchnorm());
        }
        if (request.learning_rates_size() > 0) {
          point->set_learning_rate(request.learning_rates(r));
          point_request.mutable_optimizer()->set_learning_rate(point->learning_rate());
        }
        std::string label = absl::StrCat(sweep_id, " point ", requests.size() - 1, "/", count,
                                         " (weight_init_std ", point->weight_init_std(),
                                         ", use_batchnorm ", point->use_batchnorm() ? "on" : "off",
                                         ", learning_rate ", point->learning_rate(), ")");
        if (!base.description().empty()) absl::StrAppend(&label, ": ", base.description());
        point_request.set_description(std::move(label));
      }
    }
  }
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, jobs_->SubmitAll(requests, created_by));
  requests.clear();
  for (size_t i = 0; i < jobs.size(); ++i) sweep.mutable_points(i)->set_job_id(jobs[i].job_id());

  *sweep.mutable_request() = request;
  DropInlineValues(sweep.mutable_request()->mutable_base()->mutable_train_data());
  if (sweep.request().base().has_validation_data()) {
    DropInlineValues(sweep.mutable_request()->mutable_base()->mutable_validation_data());
  }
  *sweep.mutable_created_at() = TimeToProto(absl::Now());
  sweep.set_created_by(created_by);
  if (absl::Status stored = store_->PutSweep(sweep); !stored.ok()) {
    // Without its record the jobs would run as orphans: stop them.
    for (const v1::Job& job : jobs) jobs_->Cancel(job.job_id()).IgnoreError();
    return stored;
  }
  {
    absl::MutexLock lock(&mu_);
    auto record = std::make_shared<SweepRecord>();
    record->seq = seq;
    record->sweep = sweep;
    sweeps_[sweep_id] = record;
    sweeps_by_seq_[seq] = record;
    next_seq_ = seq + 1;
  }
  BNSERVE_LOG(INFO) << "started " << sweep_id << ": " << count << " job(s) "
                    << jobs.front().job_id() << " .. " << jobs.back().job_id();
  for (size_t i = 0; i < jobs.size(); ++i) SetPointFromJob(jobs[i], sweep.mutable_points(i));
  return sweep;
}

absl::StatusOr<v1::Sweep> SweepManager::Stored(const std::string& sweep_id) {
  for (int attempt = 0;; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      auto it = sweeps_.find(sweep_id);
      if (it != sweeps_.end()) return it->second->sweep;
      if (attempt > 0 || options_.shared_queue == nullptr) return NoSuchSweep(sweep_id);
    }
    RETURN_IF_ERROR(ReloadShared());  // another replica may have started it
  }
}

v1::Sweep SweepManager::WithJobStates(const v1::Sweep& stored) {
  v1::Sweep sweep = stored;
  int finished = 0;
  for (v1::SweepPoint& point : *sweep.mutable_points()) {
    absl::StatusOr<v1::Job> job = jobs_->Get(point.job_id());
    if (job.ok()) {
      SetPointFromJob(*job, &point);
    } else {
      point.set_state(v1::FAILED);
      point.set_reason(absl::StrCat("its job is gone: ", job.status().message()));
    }
    if (IsTerminal(point.state())) ++finished;
  }
  sweep.set_finished_points(finished);
  return sweep;
}

absl::StatusOr<v1::Sweep> SweepManager::Get(const std::string& sweep_id) {
  ASSIGN_OR_RETURN(v1::Sweep stored, Stored(sweep_id));
  return WithJobStates(stored);
}

absl::StatusOr<v1::ListSweepsResponse> SweepManager::List(const v1::ListSweepsRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be >= 0, got ", request.page_size()));
  }
  const int page_size =
      request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  int64_t before = INT64_MAX;  // list sweeps with seq < before
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &before) || before <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad page_token \"", request.page_token(), "\""));
  }
  RETURN_IF_ERROR(ReloadShared());
  std::vector<v1::Sweep> page;
  v1::ListSweepsResponse response;
  {
    absl::MutexLock lock(&mu_);
    auto it = sweeps_by_seq_.lower_bound(before);
    while (it != sweeps_by_seq_.begin()) {
      --it;
      if (static_cast<int>(page.size()) == page_size) {
        response.set_next_page_token(absl::StrCat(it->first + 1));
        break;
      }
      page.push_back(it->second->sweep);
    }
  }
  // The jobs' states are read without mu_ (the JobManager has its own lock).
  for (const v1::Sweep& sweep : page) *response.add_sweeps() = WithJobStates(sweep);
  return response;
}

absl::StatusOr<v1::Sweep> SweepManager::Cancel(const std::string& sweep_id) {
  ASSIGN_OR_RETURN(v1::Sweep stored, Stored(sweep_id));
  for (const v1::SweepPoint& point : stored.points()) {
    absl::StatusOr<v1::Job> cancelled = jobs_->Cancel(point.job_id());
    // FailedPrecondition: it had finished already, nothing to cancel.
    if (!cancelled.ok() && cancelled.status().code() != absl::StatusCode::kFailedPrecondition) {
      BNSERVE_LOG(WARNING) << sweep_id << ": cancelling " << point.job_id()
                           << " failed: " << cancelled.status();
    }
  }
  BNSERVE_LOG(INFO) << "cancelled " << sweep_id;
  return WithJobStates(stored);
}

absl::StatusOr<SweepManager::WatchId> SweepManager::Watch(const std::string& sweep_id,
                                                          WatchCallback on_event) {
  ASSIGN_OR_RETURN(v1::Sweep stored, Stored(sweep_id));
  auto state = std::make_shared<WatchState>();
  const int points = stored.points_size();
  std::vector<std::string> job_ids;
  for (const v1::SweepPoint& point : stored.points()) job_ids.push_back(point.job_id());
  {
    absl::MutexLock lock(&state->mu);
    state->on_event = std::move(on_event);
    state->sweep = std::move(stored);
    state->job_watches.assign(points, 0);
    state->setup_thread = std::this_thread::get_id();
  }
  // Never under state->mu: the callbacks take it under the JobManager's lock.
  for (int i = 0; i < points; ++i) {
    {
      absl::MutexLock lock(&state->mu);
      state->replaying_point = i;
    }
    absl::StatusOr<JobManager::WatchId> id = jobs_->Watch(
        job_ids[i], [state, i](const v1::JobEvent& event) { state->OnJobEvent(i, event); });
    absl::MutexLock lock(&state->mu);
    state->replaying_point = -1;
    if (id.ok()) {
      state->job_watches[i] = *id;
    } else {  // a job the JobManager no longer has: it will send nothing
      v1::SweepPoint* point = state->sweep.mutable_points(i);
      point->set_state(v1::FAILED);
      point->set_reason(absl::StrCat("its job is gone: ", id.status().message()));
      ++state->finished_points;
    }
  }
  state->EndSetup();
  absl::MutexLock lock(&mu_);
  const WatchId id = next_watch_id_++;
  watches_.emplace(id, std::move(state));
  return id;
}

void SweepManager::Unwatch(WatchId id) {
  std::shared_ptr<WatchState> state;
  {
    absl::MutexLock lock(&mu_);
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    state = std::move(it->second);
    watches_.erase(it);
  }
  std::vector<std::pair<std::string, JobManager::WatchId>> job_watches;
  {
    absl::MutexLock lock(&state->mu);
    state->stopped = true;
    for (int i = 0; i < state->sweep.points_size(); ++i) {
      if (state->job_watches[i] != 0) {
        job_watches.emplace_back(state->sweep.points(i).job_id(), state->job_watches[i]);
      }
    }
  }
  // After these no callback of the watch runs or will run.
  for (const auto& [job_id, job_watch] : job_watches) jobs_->Unwatch(job_id, job_watch);
}

}  // namespace bnserve
