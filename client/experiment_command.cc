// bnctl experiment batchnorm: the book's comparison (section 6.3.2) through
// the service: two jobs on the same data and seed, BatchNorm on and off,
// watched side by side, with a table of per-epoch training accuracies.
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

// The epochs of one job as its watch stream delivers them. Thread-safe.
struct JobProgress {
  absl::Mutex mutex;
  std::vector<v1::EpochMetrics> epochs ABSL_GUARDED_BY(mutex);
  bool done ABSL_GUARDED_BY(mutex) = false;
  v1::Job final_job ABSL_GUARDED_BY(mutex);
  absl::Status status ABSL_GUARDED_BY(mutex);
};

// Streams `job_id` into `progress` until the stream ends.
void WatchInto(ClientConnection* connection, const std::string& job_id,
               JobProgress* progress) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientContext> context = connection->NewContext(/*streaming=*/true);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      connection->training().WatchJob(context.get(), request);
  v1::JobEvent event;
  bool finished = false;
  while (reader->Read(&event)) {
    absl::MutexLock lock(&progress->mutex);
    if (event.has_epoch()) progress->epochs.push_back(event.epoch());
    if (event.has_finished()) {
      progress->final_job = event.finished();
      finished = true;
    }
  }
  grpc::Status status = reader->Finish();
  absl::MutexLock lock(&progress->mutex);
  progress->status = FromGrpcStatus(status);
  if (progress->status.ok() && !finished) {
    progress->status = absl::UnavailableError("watch stream ended before the job did");
  }
  progress->done = true;
}

}  // namespace

int RunExperiment(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(
      "bnctl experiment batchnorm [--weight-std 0.05] [--epochs 20] [--limit 1000] ...");
  double weight_std = 0.05;
  int epochs = 20;
  int limit = 1000;
  double lr = 0.01;
  int batch_size = 100;
  int seed = 0;
  std::string dataset = "mnist-digits";
  std::string prefix = "bn-experiment";
  parser.AddDouble("weight-std", &weight_std, "weight init stddev (default 0.05)");
  parser.AddInt("epochs", &epochs, "epochs (default 20)");
  parser.AddInt("limit", &limit, "training samples (default 1000)");
  parser.AddDouble("lr", &lr, "SGD learning rate (default 0.01)");
  parser.AddInt("batch-size", &batch_size, "mini-batch size (default 100)");
  parser.AddInt("seed", &seed, "seed shared by both jobs (default 0)");
  parser.AddString("dataset", &dataset, "built-in data set (default mnist-digits)");
  parser.AddString("model-prefix", &prefix,
                   "models <prefix>-batchnorm and <prefix>-plain (default bn-experiment)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  if (positional[0] != "batchnorm") {
    return ReportUsageError(
        absl::InvalidArgumentError(absl::StrCat("unknown experiment '", positional[0],
                                                "'; the one experiment is batchnorm")),
        parser);
  }

  v1::TrainRequest base;
  v1::NetworkConfig* network = base.mutable_network();
  for (int i = 0; i < 5; ++i) network->add_hidden_sizes(100);
  network->set_activation(v1::RELU);
  network->mutable_weight_init()->set_kind(v1::WeightInit::STD);
  network->mutable_weight_init()->set_std(weight_std);
  base.mutable_optimizer()->set_type(v1::SGD);
  base.mutable_optimizer()->set_learning_rate(lr);
  v1::BuiltinData* data = base.mutable_train_data()->mutable_builtin();
  data->set_name(dataset);
  data->set_split(v1::TRAIN);
  data->set_limit(limit);
  base.set_epochs(epochs);
  base.set_batch_size(batch_size);
  base.set_seed(seed);

  ClientConnection connection(globals);
  std::string job_ids[2];
  const char* kinds[2] = {"batchnorm", "plain"};
  for (int i = 0; i < 2; ++i) {
    v1::TrainRequest request = base;
    request.set_model_name(absl::StrCat(prefix, "-", kinds[i]));
    request.mutable_network()->set_use_batchnorm(i == 0);
    request.set_description(absl::StrCat("experiment batchnorm: ", kinds[i],
                                         ", weight std ", weight_std));
    v1::Job job;
    grpc::Status status =
        connection.training().Train(connection.NewContext().get(), request, &job);
    if (!status.ok()) return ReportError(FromGrpcStatus(status));
    job_ids[i] = job.job_id();
    std::cout << "submitted " << job.job_id() << " (" << request.model_name() << ", "
              << FormatNetwork(request.network()) << ")" << std::endl;
  }

  JobProgress progress[2];
  std::thread watchers[2];
  for (int i = 0; i < 2; ++i) {
    watchers[i] = std::thread(WatchInto, &connection, job_ids[i], &progress[i]);
  }
  if (!globals.json) {
    std::cout << absl::StrFormat("%5s  %15s  %15s\n", "epoch", "batchnorm acc", "plain acc");
  }
  size_t printed = 0;
  while (true) {
    // Print every epoch both jobs have finished; stop when both streams end.
    std::vector<std::pair<double, double>> rows;
    bool all_done = true;
    {
      absl::MutexLock lock_a(&progress[0].mutex);
      absl::MutexLock lock_b(&progress[1].mutex);
      size_t ready = std::min(progress[0].epochs.size(), progress[1].epochs.size());
      for (; printed < ready; ++printed) {
        rows.emplace_back(progress[0].epochs[printed].train_accuracy(),
                          progress[1].epochs[printed].train_accuracy());
      }
      all_done = progress[0].done && progress[1].done;
    }
    if (!globals.json) {
      for (size_t i = 0; i < rows.size(); ++i) {
        std::cout << absl::StrFormat("%5d  %15.4f  %15.4f\n", printed - rows.size() + i + 1,
                                     rows[i].first, rows[i].second)
                  << std::flush;
      }
    }
    if (all_done) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  for (std::thread& watcher : watchers) watcher.join();

  int exit_code = kExitOk;
  double final_accuracy[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    absl::MutexLock lock(&progress[i].mutex);
    if (!progress[i].status.ok()) return ReportError(progress[i].status);
    const v1::Job& job = progress[i].final_job;
    if (globals.json) {
      std::cout << ToJson(job) << std::endl;
    } else if (job.state() != v1::SUCCEEDED) {
      std::cout << FormatJobOutcome(job) << std::endl;
    }
    if (job.state() != v1::SUCCEEDED) exit_code = kExitJobUnsuccessful;
    if (!job.epochs().empty()) final_accuracy[i] = job.epochs().rbegin()->train_accuracy();
  }
  if (!globals.json) {
    std::cout << absl::StrFormat("final train accuracy: batchnorm %.3f plain %.3f\n",
                                 final_accuracy[0], final_accuracy[1]);
  }
  return exit_code;
}

}  // namespace bnserve
