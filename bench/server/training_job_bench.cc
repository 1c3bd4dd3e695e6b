// What a training job adds to core training: the seed network (784-100x5-10,
// ReLU, He init, BatchNorm, SGD lr 0.01, batch 100, seed 42, 20 epochs)
// trained (a) by core Train() in this thread and (b) as a job through a
// JobManager with a real SqliteModelStore in a temporary directory (submit,
// wait until SUCCEEDED). Each iteration runs both, alternating which goes
// first, so that a change of machine load hits both alike.
//
// The job's time is its wall time from Submit until the finished event:
// queueing, data resolution, network creation, the epochs (with per-epoch
// metrics persisted and published), exporting and registering the model. The
// core's time covers network creation and Train(). Both are divided by the
// epochs: core_epoch_ms and job_epoch_ms; overhead_pct = job / core - 1 over
// all iterations. *_trainer_epoch_ms are the epoch seconds the trainer itself
// reports (inside the epochs only). The two runs must end on the same final
// loss (the trainer is deterministic), or the benchmark fails. job_*_ms say
// where a job's time outside its epochs went (per job): Submit, Submit to
// RUNNING, RUNNING to the first epoch, between epochs (metrics persisted and
// published), last epoch to the finished event (export and register).
// BM_RegisterSeedVersion times that last step alone.
//
// Data: /0 a synthetic 1000 x 784 set sent inline (no files needed); /1 the
// built-in mnist-digits train split (8,000 rows, as `bnctl train --model seed`
// trains), skipped if the data directory ($BNSERVE_DATA_DIR, else var/data)
// lacks it.
//
//   make bench-server     (or: build/bench/bnserve_server_bench)
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "bnserve/v1/training_service.pb.h"
#include "core/builtin_datasets.h"
#include "core/dataset.h"
#include "core/network.h"
#include "core/status_macros.h"
#include "core/trainer.h"
#include "server/data_resolver.h"
#include "server/job_manager.h"
#include "server/model_catalog.h"
#include "server/proto_convert.h"
#include "server/postgres_model_store.h"
#include "server/sqlite_model_store.h"
#include "tests/server/postgres_test_server.h"

namespace bnserve {
namespace {

constexpr int kEpochs = 20;
constexpr uint64_t kSeed = 42;

// rows x 784 uniform features; the label is the argmax of the first 10.
v1::InlineData SyntheticInline(int rows) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  v1::InlineData data;
  data.mutable_features()->add_shape(rows);
  data.mutable_features()->add_shape(784);
  data.mutable_features()->mutable_values()->Reserve(rows * 784);
  for (int r = 0; r < rows; ++r) {
    int best = 0;
    float best_value = -1;
    for (int c = 0; c < 784; ++c) {
      const float value = uniform(rng);
      data.mutable_features()->add_values(value);
      if (c < 10 && value > best_value) {
        best_value = value;
        best = c;
      }
    }
    data.add_labels(best);
  }
  return data;
}

v1::TrainRequest SeedRequest(const v1::DataSpec& train) {
  v1::TrainRequest request;
  request.set_model_name("seed");
  for (int i = 0; i < 5; ++i) request.mutable_network()->add_hidden_sizes(100);
  request.mutable_network()->set_output_size(10);
  request.mutable_optimizer()->set_type(v1::SGD);
  request.mutable_optimizer()->set_learning_rate(0.01);
  *request.mutable_train_data() = train;
  request.set_epochs(kEpochs);
  request.set_batch_size(100);
  request.set_seed(kSeed);
  return request;
}

// A JobManager on a fresh SQLite store in a temporary directory.
class JobStack {
 public:
  static absl::StatusOr<std::unique_ptr<JobStack>> Create(const std::string& data_dir) {
    std::unique_ptr<JobStack> stack(new JobStack(data_dir));
    std::filesystem::remove_all(stack->dir_);
    ASSIGN_OR_RETURN(stack->store_,
                     SqliteModelStore::Open((stack->dir_ / "registry.db").string()));
    stack->catalog_ = std::make_unique<ModelCatalog>(stack->store_.get());
    stack->jobs_ = std::make_unique<JobManager>(stack->store_.get(), stack->catalog_.get(),
                                                &stack->data_, JobManagerOptions());
    RETURN_IF_ERROR(stack->jobs_->Start());
    return stack;
  }
  ~JobStack() {
    if (jobs_ != nullptr) jobs_->Shutdown();
    jobs_.reset();
    catalog_.reset();
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Where a job's wall time went, from the times its events arrived.
  struct Phases {
    double submit = 0;       // Submit() returned
    double start = 0;        // Submit -> RUNNING event
    double setup = 0;        // RUNNING -> first epoch event, less that epoch
    double between = 0;      // epoch events' spacing beyond their epochs
    double finish = 0;       // last epoch event -> finished event
  };

  // Submits `request` and waits for its end. Returns the finished job and
  // adds its phases to `phases`.
  absl::StatusOr<v1::Job> Run(const v1::TrainRequest& request, Phases* phases) {
    const absl::Time begin = absl::Now();
    ASSIGN_OR_RETURN(v1::Job queued, jobs_->Submit(request));
    const absl::Time submitted = absl::Now();
    absl::Notification done;
    v1::Job finished;
    std::vector<absl::Time> epoch_times;
    absl::Time running = submitted, ended = submitted;
    // Callbacks run under the manager's lock, in order; the last is `finished`.
    // History already published is replayed at once (its times are late).
    ASSIGN_OR_RETURN(JobManager::WatchId id,
                     jobs_->Watch(queued.job_id(), [&](const v1::JobEvent& event) {
                       const absl::Time now = absl::Now();
                       if (event.has_epoch()) epoch_times.push_back(now);
                       if (event.has_finished()) {
                         ended = now;
                         finished = event.finished();
                         done.Notify();
                       } else if (event.state() == v1::RUNNING) {
                         running = now;
                       }
                     }));
    if (!done.WaitForNotificationWithTimeout(absl::Minutes(10))) {
      jobs_->Unwatch(queued.job_id(), id);
      return absl::DeadlineExceededError("the job did not finish in 10 minutes");
    }
    if (finished.state() != v1::SUCCEEDED) {
      return absl::InternalError(absl::StrCat("job ", v1::JobState_Name(finished.state()),
                                              ": ", finished.reason()));
    }
    if (!epoch_times.empty() && static_cast<int>(epoch_times.size()) == finished.epochs_size()) {
      phases->submit += absl::ToDoubleSeconds(submitted - begin);
      phases->start += absl::ToDoubleSeconds(running - begin);
      phases->setup += absl::ToDoubleSeconds(epoch_times[0] - running) -
                       finished.epochs(0).seconds();
      for (size_t i = 1; i < epoch_times.size(); ++i) {
        phases->between += absl::ToDoubleSeconds(epoch_times[i] - epoch_times[i - 1]) -
                           finished.epochs(static_cast<int>(i)).seconds();
      }
      phases->finish += absl::ToDoubleSeconds(ended - epoch_times.back());
    }
    return finished;
  }

 private:
  explicit JobStack(const std::string& data_dir)
      : dir_(std::filesystem::temp_directory_path() /
             absl::StrCat("bnserve_training_job_bench_", ::getpid())),
        data_(data_dir) {}

  const std::filesystem::path dir_;
  DataResolver data_;
  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<JobManager> jobs_;
};

struct CoreRun {
  double seconds = 0;
  double trainer_seconds = 0;  // sum of the epochs' own seconds
  double final_loss = 0;
};

absl::StatusOr<CoreRun> TrainCore(const v1::TrainRequest& request, const Dataset& train) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(NetworkConfig config,
                   NetworkConfigFromProto(request.network(), train.feature_size()));
  ASSIGN_OR_RETURN(Network<float> network, Network<float>::Create(config, request.seed()));
  TrainerOptions options;
  options.epochs = request.epochs();
  options.batch_size = request.batch_size();
  options.seed = request.seed();
  ASSIGN_OR_RETURN(options.optimizer, OptimizerConfigFromProto(request.optimizer()));
  ASSIGN_OR_RETURN(std::vector<EpochMetrics> metrics,
                   Train(&network, train, Dataset(), options, nullptr, nullptr));
  CoreRun run;
  run.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (const EpochMetrics& epoch : metrics) run.trainer_seconds += epoch.seconds;
  run.final_loss = metrics.back().train_loss;
  return run;
}

void BM_TrainingJobOverhead(benchmark::State& state) {
  const bool mnist = state.range(0) == 1;
  const std::string data_dir = DefaultDataDir();
  v1::DataSpec spec;
  absl::StatusOr<Dataset> train;
  if (mnist) {
    spec.mutable_builtin()->set_name("mnist-digits");
    spec.mutable_builtin()->set_split(v1::TRAIN);
    train = LoadBuiltinDataset(data_dir, "mnist-digits", Split::kTrain);
  } else {
    *spec.mutable_inline_data() = SyntheticInline(1000);
    train = DataResolver::FromInline(spec.inline_data(), 10);
  }
  if (!train.ok()) {
    state.SkipWithError(absl::StrCat("data: ", train.status().message()).c_str());
    return;
  }
  const v1::TrainRequest request = SeedRequest(spec);
  absl::StatusOr<std::unique_ptr<JobStack>> stack = JobStack::Create(data_dir);
  if (!stack.ok()) {
    state.SkipWithError(absl::StrCat("job stack: ", stack.status().message()).c_str());
    return;
  }
  // Untimed warm-up: the built-in split enters the resolver's cache (as on a
  // server that has trained on it before), pages and allocator settle.
  JobStack::Phases phases;
  if (absl::StatusOr<v1::Job> warm = (*stack)->Run(request, &phases); !warm.ok()) {
    state.SkipWithError(absl::StrCat("warm-up job: ", warm.status().message()).c_str());
    return;
  }

  phases = JobStack::Phases();
  double core_seconds = 0, job_seconds = 0, core_trainer = 0, job_trainer = 0;
  int64_t runs = 0;
  for (auto _ : state) {
    absl::StatusOr<CoreRun> core;
    absl::StatusOr<v1::Job> job;
    double job_wall = 0;
    auto run_job = [&] {
      const absl::Time start = absl::Now();
      job = (*stack)->Run(request, &phases);
      job_wall = absl::ToDoubleSeconds(absl::Now() - start);
    };
    if (runs % 2 == 0) {
      core = TrainCore(request, *train);
      run_job();
    } else {
      run_job();
      core = TrainCore(request, *train);
    }
    if (!core.ok() || !job.ok()) {
      state.SkipWithError(
          (core.ok() ? job.status() : core.status()).ToString().c_str());
      return;
    }
    if (job->epochs_size() != kEpochs ||
        job->epochs(kEpochs - 1).train_loss() != core->final_loss) {
      state.SkipWithError("the job and core Train() did not train the same network");
      return;
    }
    state.SetIterationTime(job_wall);
    core_seconds += core->seconds;
    core_trainer += core->trainer_seconds;
    job_seconds += job_wall;
    for (const v1::EpochMetrics& epoch : job->epochs()) job_trainer += epoch.seconds();
    ++runs;
  }
  const double epochs = static_cast<double>(runs) * kEpochs;
  state.counters["core_epoch_ms"] = 1000 * core_seconds / epochs;
  state.counters["job_epoch_ms"] = 1000 * job_seconds / epochs;
  state.counters["core_trainer_epoch_ms"] = 1000 * core_trainer / epochs;
  state.counters["job_trainer_epoch_ms"] = 1000 * job_trainer / epochs;
  state.counters["overhead_pct"] = 100 * (job_seconds / core_seconds - 1);
  // Per job, in ms: where the job's time outside its epochs went.
  const double jobs = static_cast<double>(runs);
  state.counters["job_submit_ms"] = 1000 * phases.submit / jobs;
  state.counters["job_start_ms"] = 1000 * phases.start / jobs;
  state.counters["job_setup_ms"] = 1000 * phases.setup / jobs;
  state.counters["job_between_epochs_ms"] = 1000 * phases.between / jobs;
  state.counters["job_finish_ms"] = 1000 * phases.finish / jobs;
  state.SetLabel(mnist ? "mnist-digits train (8000 rows)" : "synthetic 1000x784 inline");
}

// The registry of BM_RegisterSeedVersion: SQLite in `dir`, or a new
// database on the process's local PostgreSQL.
absl::StatusOr<std::unique_ptr<ModelStore>> OpenBenchStore(bool postgres,
                                                           const std::filesystem::path& dir) {
  if (!postgres) {
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteModelStore> sqlite,
                     SqliteModelStore::Open((dir / "registry.db").string()));
    return std::unique_ptr<ModelStore>(std::move(sqlite));
  }
  ASSIGN_OR_RETURN(testing::PostgresTestServer * server, testing::PostgresTestServer::Get());
  ASSIGN_OR_RETURN(std::string url, server->CreateDatabase());
  ASSIGN_OR_RETURN(std::unique_ptr<PostgresModelStore> pg,
                   PostgresModelStore::Open(url, PostgresModelStore::Options()));
  return std::unique_ptr<ModelStore>(std::move(pg));
}

// The end of a job: a trained seed network registered as a new version
// together with its finished job (one transaction), as JobManager::Succeed
// does (ModelCatalog::RegisterNetwork). /0: exporting the tensors to protos
// only; /1: registering (export included) in SQLite; /2: in PostgreSQL (a
// throwaway local server, tests/server/postgres_test_server.h, fsync off:
// the figure is the store's and the protocol's cost, not a disk's).
void BM_RegisterSeedVersion(benchmark::State& state) {
  const bool register_it = state.range(0) >= 1;
  const bool postgres = state.range(0) == 2;
  const v1::TrainRequest request = SeedRequest(v1::DataSpec());
  absl::StatusOr<NetworkConfig> config = NetworkConfigFromProto(request.network(), 784);
  if (!config.ok()) {
    state.SkipWithError(config.status().ToString().c_str());
    return;
  }
  absl::StatusOr<Network<float>> network = Network<float>::Create(*config, kSeed);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    absl::StrCat("bnserve_register_bench_", ::getpid());
  std::filesystem::remove_all(dir);
  absl::StatusOr<std::unique_ptr<ModelStore>> store = OpenBenchStore(postgres, dir);
  if (!network.ok() || !store.ok()) {
    state.SkipWithError(store.ok() ? "setup failed" : store.status().ToString().c_str());
    return;
  }
  ModelCatalog catalog(store->get());
  int64_t job_number = 0;
  for (auto _ : state) {
    v1::ModelVersion version;
    version.set_model_name("seed");
    if (register_it) {
      v1::Job finished;
      finished.set_job_id(absl::StrCat("job-", ++job_number));
      finished.set_state(v1::SUCCEEDED);
      absl::StatusOr<v1::ModelVersion> registered =
          catalog.RegisterNetwork(*network, version, &finished);
      if (!registered.ok()) {
        state.SkipWithError(registered.status().ToString().c_str());
        break;
      }
    } else {
      *version.mutable_network() = NetworkConfigToProto(*config);
      TensorsToProto(network->ExportTensors(), version.mutable_tensors());
    }
    benchmark::DoNotOptimize(version);
  }
  store->reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

BENCHMARK(BM_RegisterSeedVersion)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_TrainingJobOverhead)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bnserve
