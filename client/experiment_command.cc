// bnctl experiment batchnorm: the book's comparison (section 6.3.2) through
// the service: two jobs on the same data and seed, BatchNorm on and off,
// watched side by side, with a table of per-epoch training accuracies.
//
// bnctl experiment sweep: the book's figure 6-18 as one training sweep: 16
// weight scales (numpy.logspace(0, -4, 16)) x BatchNorm on and off on the
// same data and seed, watched to the end, with a table of the final
// training accuracies per scale.
#include <cmath>
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

// The request both experiments start from: the book's 784-100x5-10 ReLU
// network trained by SGD on the first `limit` training images.
v1::TrainRequest BookRequest(double lr, const std::string& dataset, int limit, int epochs,
                             int batch_size, int seed) {
  v1::TrainRequest base;
  v1::NetworkConfig* network = base.mutable_network();
  for (int i = 0; i < 5; ++i) network->add_hidden_sizes(100);
  network->set_activation(v1::RELU);
  base.mutable_optimizer()->set_type(v1::SGD);
  base.mutable_optimizer()->set_learning_rate(lr);
  v1::BuiltinData* data = base.mutable_train_data()->mutable_builtin();
  data->set_name(dataset);
  data->set_split(v1::TRAIN);
  data->set_limit(limit);
  base.set_epochs(epochs);
  base.set_batch_size(batch_size);
  base.set_seed(seed);
  return base;
}

// experiment sweep.
int RunSweepExperiment(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl experiment sweep [--scales 16] [--epochs 20] [--limit 1000] ...");
  int scales = 16;
  int epochs = 20;
  int limit = 1000;
  double lr = 0.01;
  int batch_size = 100;
  int seed = 0;
  std::string dataset = "mnist-digits";
  std::string model = "bn-sweep";
  parser.AddInt("scales", &scales,
                "weight scales: numpy.logspace(0, -4, N), 1 .. 1e-4 (default 16)");
  parser.AddInt("epochs", &epochs, "epochs of each job (default 20)");
  parser.AddInt("limit", &limit, "training samples (default 1000)");
  parser.AddDouble("lr", &lr, "SGD learning rate (default 0.01)");
  parser.AddInt("batch-size", &batch_size, "mini-batch size (default 100)");
  parser.AddInt("seed", &seed, "seed shared by every job (default 0)");
  parser.AddString("dataset", &dataset, "built-in data set (default mnist-digits)");
  parser.AddString("model", &model,
                   "every point registers a version of this model (default bn-sweep)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  if (scales < 1) {
    return ReportUsageError(absl::InvalidArgumentError("--scales must be >= 1"), parser);
  }

  v1::StartSweepRequest request;
  *request.mutable_base() = BookRequest(lr, dataset, limit, epochs, batch_size, seed);
  request.mutable_base()->set_model_name(model);
  for (int i = 0; i < scales; ++i) {
    const double exponent = scales == 1 ? 0.0 : -4.0 * i / (scales - 1);
    request.add_weight_init_stds(std::pow(10.0, exponent));
  }
  request.add_use_batchnorm(true);
  request.add_use_batchnorm(false);
  request.set_description(absl::StrCat("experiment sweep: ", scales,
                                       " weight scales x BatchNorm on/off"));

  ClientConnection connection(globals);
  v1::Sweep sweep;
  grpc::Status status =
      connection.training().StartSweep(connection.NewContext().get(), request, &sweep);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (!globals.json) {
    std::cout << "started " << sweep.sweep_id() << ": " << sweep.points_size() << " jobs ("
              << scales << " weight scales x BatchNorm on/off, 784-100x5-10 relu, SGD lr " << lr
              << ", model " << model << ")" << std::endl;
  }
  absl::StatusOr<v1::Sweep> done =
      WatchSweepToEnd(&connection, globals, sweep.sweep_id(), /*print=*/true);
  if (!done.ok()) return ReportError(done.status());
  if (globals.json) {
    std::cout << ToJson(*done) << std::endl;
  } else {
    std::cout << "\nfinal train accuracy of " << done->sweep_id() << " (" << epochs
              << " epochs, " << limit << " samples):\n"
              << FormatSweepBatchNormTable(*done);
  }
  return ExitCodeForSweep(*done);
}

}  // namespace

int RunExperiment(const CommandArgs& args, GlobalOptions globals) {
  if (!args.empty() && args[0] == "sweep") return RunSweepExperiment(args, globals);
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
                                                "'; the experiments are batchnorm and sweep")),
        parser);
  }

  v1::TrainRequest base = BookRequest(lr, dataset, limit, epochs, batch_size, seed);
  v1::WeightInit* init = base.mutable_network()->mutable_weight_init();
  init->set_kind(v1::WeightInit::STD);
  init->set_std(weight_std);

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
