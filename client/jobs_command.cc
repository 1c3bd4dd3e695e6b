// bnctl jobs list|get|watch|cancel, and the job watcher shared with train
// --follow: one line per epoch and, on a terminal, a progress bar redrawn in
// place with carriage returns.
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

// The live status line under the epoch lines: "[####....] 2/5 epochs RUNNING 3.1s".
// Redrawn every 200 ms by its own thread while enabled. Thread-safe.
class ProgressLine {
 public:
  ProgressLine(bool enabled, int total_epochs)
      : enabled_(enabled), total_epochs_(total_epochs), start_(absl::Now()) {
    if (enabled_) ticker_ = std::thread([this] { Tick(); });
  }
  ~ProgressLine() { Stop(); }

  void SetState(v1::JobState state) {
    absl::MutexLock lock(&mutex_);
    state_ = state;
    RedrawLocked();
  }
  void SetEpochsDone(int done) {
    absl::MutexLock lock(&mutex_);
    epochs_done_ = done;
    RedrawLocked();
  }
  // Prints `line` above the status line.
  void Print(const std::string& line) {
    absl::MutexLock lock(&mutex_);
    if (enabled_) std::cout << "\r\033[K";
    std::cout << line << "\n";
    RedrawLocked();
  }
  // Stops the ticker and erases the status line.
  void Stop() {
    {
      absl::MutexLock lock(&mutex_);
      if (stopped_) return;
      stopped_ = true;
      if (enabled_) std::cout << "\r\033[K" << std::flush;
    }
    if (ticker_.joinable()) ticker_.join();
  }

 private:
  void Tick() {
    absl::MutexLock lock(&mutex_);
    while (!stopped_) {
      RedrawLocked();
      mutex_.AwaitWithTimeout(absl::Condition(&stopped_), absl::Milliseconds(200));
    }
  }
  void RedrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (!enabled_ || stopped_) {
      std::cout << std::flush;
      return;
    }
    std::cout << "\r\033[K" << ProgressBar(epochs_done_, total_epochs_, 30) << " "
              << epochs_done_ << "/" << total_epochs_ << " epochs  " << JobStateName(state_)
              << absl::StrFormat("  %.1fs", absl::ToDoubleSeconds(absl::Now() - start_))
              << std::flush;
  }

  const bool enabled_;
  const int total_epochs_;
  const absl::Time start_;
  absl::Mutex mutex_;
  v1::JobState state_ ABSL_GUARDED_BY(mutex_) = v1::QUEUED;
  int epochs_done_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread ticker_;
};

int RunJobsList(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl jobs list [--model M] [--state S] [--limit N]");
  std::string model, state;
  int limit = 50;
  parser.AddString("model", &model, "only this model's jobs");
  parser.AddString("state", &state, "only jobs in this state (queued, running, ...)");
  parser.AddInt("limit", &limit, "at most this many jobs (default 50)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  v1::ListJobsRequest request;
  request.set_model_name(model);
  if (!state.empty()) {
    absl::StatusOr<v1::JobState> parsed = ParseJobState(state);
    if (!parsed.ok()) return ReportUsageError(parsed.status(), parser);
    request.set_state(*parsed);
  }
  ClientConnection connection(globals);
  v1::ListJobsResponse all;
  do {
    request.set_page_size(std::min(limit - all.jobs_size(), 1000));
    v1::ListJobsResponse page;
    grpc::Status status =
        connection.training().ListJobs(connection.NewContext().get(), request, &page);
    if (!status.ok()) return ReportError(FromGrpcStatus(status));
    for (v1::Job& job : *page.mutable_jobs()) *all.add_jobs() = std::move(job);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty() && all.jobs_size() < limit);
  if (globals.json) {
    std::cout << ToJson(all) << std::endl;
    return kExitOk;
  }
  if (all.jobs().empty()) std::cout << "no jobs\n";
  for (const v1::Job& job : all.jobs()) std::cout << FormatJobLine(job) << "\n";
  return kExitOk;
}

// jobs get|watch|cancel ID.
int RunJobsOne(const std::string& verb, const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(absl::StrCat("bnctl jobs ", verb, " JOB_ID"));
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  ClientConnection connection(globals);
  const std::string& job_id = positional[0];
  if (verb == "watch") {
    absl::StatusOr<v1::Job> job = WatchJobToEnd(&connection, globals, job_id, true);
    if (!job.ok()) return ReportError(job.status());
    std::cout << (globals.json ? ToJson(*job) : FormatJobOutcome(*job)) << std::endl;
    return ExitCodeForJob(*job);
  }
  v1::Job job;
  grpc::Status status;
  if (verb == "get") {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    status = connection.training().GetJob(connection.NewContext().get(), request, &job);
  } else {
    v1::CancelJobRequest request;
    request.set_job_id(job_id);
    status = connection.training().CancelJob(connection.NewContext().get(), request, &job);
  }
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(job) << std::endl;
  } else if (verb == "get") {
    std::cout << FormatJobDetails(job);
  } else {
    std::cout << "cancel requested: " << FormatJobLine(job) << std::endl;
  }
  return kExitOk;
}

}  // namespace

absl::StatusOr<v1::Job> WatchJobToEnd(ClientConnection* connection,
                                      const GlobalOptions& globals,
                                      const std::string& job_id, bool print) {
  // The job first, for its epoch count (and a quick NOT_FOUND).
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  grpc::Status status =
      connection->training().GetJob(connection->NewContext().get(), get, &job);
  if (!status.ok()) return FromGrpcStatus(status);

  const bool text = print && !globals.json;
  ProgressLine progress(text && isatty(STDOUT_FILENO), job.total_epochs());
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientContext> context = connection->NewContext(/*streaming=*/true);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      connection->training().WatchJob(context.get(), request);
  v1::JobEvent event;
  bool finished = false;
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    if (print && globals.json) std::cout << ToJson(event) << std::endl;
    switch (event.event_case()) {
      case v1::JobEvent::kState:
        if (text && event.state() != last_state) {
          progress.Print(absl::StrCat(job_id, " ", JobStateName(event.state())));
        }
        last_state = event.state();
        progress.SetState(event.state());
        break;
      case v1::JobEvent::kEpoch:
        if (text) progress.Print(FormatEpoch(event.epoch(), job.total_epochs()));
        progress.SetEpochsDone(event.epoch().epoch());
        break;
      case v1::JobEvent::kFinished:
        job = event.finished();
        finished = true;
        break;
      default:
        break;
    }
  }
  status = reader->Finish();
  progress.Stop();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!finished) {
    return absl::UnavailableError(
        absl::StrCat("the watch stream of ", job_id, " ended before the job did"));
  }
  return job;
}

int RunJobs(const CommandArgs& args, GlobalOptions globals) {
  const std::string verb = args.empty() ? "" : args[0];
  const CommandArgs rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (verb == "list") return RunJobsList(rest, globals);
  if (verb == "get" || verb == "watch" || verb == "cancel") {
    return RunJobsOne(verb, rest, globals);
  }
  std::cerr << "usage: bnctl jobs list [--model M] [--state S] | get ID | watch ID | cancel ID\n";
  return (verb == "--help" || verb == "help") ? kExitOk : kExitUsage;
}

}  // namespace bnserve
