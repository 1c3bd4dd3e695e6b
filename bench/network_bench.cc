// Benchmarks of the seed network (784-100x5-10, ReLU, He init, batch 100, float):
// one training iteration and inference at batch 1 and 1000, with and
// without BatchNorm. Single-threaded (Eigen is built without OpenMP).
//
//   build/bench/bnserve_bench --benchmark_min_time=2
#include <cstdint>
#include <memory>

#include "benchmark/benchmark.h"
#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/network.h"
#include "core/network_config.h"
#include "core/optimizer.h"
#include "tests/testing/random_data.h"

namespace bnserve {
namespace {

NetworkConfig SeedConfig(bool batchnorm) {
  NetworkConfig config;  // 784-100x5-10, ReLU
  config.weight_init.kind = WeightInit::Kind::kHe;
  config.use_batchnorm = batchnorm;
  return config;
}

using ::bnserve::testing::RandomInput;
using ::bnserve::testing::RandomLabels;

// One iteration: forward, backward, SGD update (lr 0.01) of every parameter.
void TrainIteration(benchmark::State& state, bool batchnorm) {
  const NetworkConfig config = SeedConfig(batchnorm);
  absl::StatusOr<Network<float>> net = Network<float>::Create(config, 1);
  OptimizerConfig sgd;
  sgd.type = OptimizerType::kSgd;
  sgd.learning_rate = 0.01;
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer = CreateOptimizer(sgd);
  if (!net.ok() || !optimizer.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  const int batch = 100;
  const Matrix x = RandomInput(batch, config.input_size, 2);
  const Labels labels = RandomLabels(batch, config.output_size, 3);
  const std::vector<ParameterRef<float>> params = net->TrainableParameters();
  for (auto _ : state) {
    absl::StatusOr<float> loss = net->ComputeGradients(x, labels, nullptr);
    benchmark::DoNotOptimize(loss);
    (*optimizer)->Update(params);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void Inference(benchmark::State& state, bool batchnorm) {
  const NetworkConfig config = SeedConfig(batchnorm);
  absl::StatusOr<Network<float>> net = Network<float>::Create(config, 1);
  if (!net.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  const int batch = static_cast<int>(state.range(0));
  const Matrix x = RandomInput(batch, config.input_size, 4);
  for (auto _ : state) {
    absl::StatusOr<Matrix> scores = net->Predict(x, BnMode::kInference);
    benchmark::DoNotOptimize(scores);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_SeedNetTrainIteration(benchmark::State& state) { TrainIteration(state, true); }
void BM_SeedNetTrainIterationNoBn(benchmark::State& state) { TrainIteration(state, false); }
void BM_SeedNetInference(benchmark::State& state) { Inference(state, true); }
void BM_SeedNetInferenceNoBn(benchmark::State& state) { Inference(state, false); }

BENCHMARK(BM_SeedNetTrainIteration)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetTrainIterationNoBn)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetInference)->Arg(1)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetInferenceNoBn)->Arg(1)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace bnserve
