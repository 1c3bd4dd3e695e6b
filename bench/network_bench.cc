// Benchmarks of the seed network (784-100x5-10, ReLU, He init, batch 100, float):
// one training iteration, and inference (PredictProbabilities in INFERENCE
// mode, the call Predict serves) at batch 1, 256 and 1000 with BatchNorm
// (BM_SeedNetInference), with its BatchNorm folded into the Affine layers
// (BM_SeedNetInferenceFolded, what bnserve serves by default) and without
// BatchNorm at all (BM_SeedNetInferenceNoBn). Single-threaded (Eigen is
// built without OpenMP).
//
// BM_SeedNetFoldedOverNoBn/B runs the three networks in 40 interleaved
// rounds at batch B (a VM's speed drifts over seconds, and neighbouring
// measurements see the same machine) and reports folded_over_nobn, the
// median over rounds of the folded network's time over the BN-free
// network's (target: within 3%, <= 1.03), unfolded_over_nobn, what
// BatchNorm costs without folding, and each network's best round
// (nobn_us, folded_us, unfolded_us per call).
//
// A training iteration also reports its matrix-product rate against this
// machine's own single-core sgemm peak, measured in the same run (a
// 1024x1024x1024 float product, interleaved with the iterations, best of
// twelve rounds each): `gflops` and `of_peak`.
// The iteration should stay at or above 0.8 of the peak.
//
//   build/bench/bnserve_bench --benchmark_min_time=2
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/batch_norm_folding.h"
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

// Floating-point operations of the products of one training iteration: per
// Affine (in x out) the forward x*W, the weight gradient x^T*dout and, except
// for the first layer, the input gradient dout*W^T, each 2*batch*in*out.
double TrainIterationFlops(const NetworkConfig& config, int batch) {
  double flops = 0;
  int fan_in = config.input_size;
  std::vector<int> outs = config.hidden_sizes;
  outs.push_back(config.output_size);
  for (size_t i = 0; i < outs.size(); ++i) {
    const double product = 2.0 * batch * fan_in * outs[i];
    flops += (i == 0 ? 2 : 3) * product;
    fan_in = outs[i];
  }
  return flops;
}

// Seconds of one 1024^3 float product through Eigen: the machine's
// single-core sgemm, the yardstick of a training iteration's products.
double SgemmSeconds() {
  constexpr int kN = 1024;
  static const Matrix a = RandomInput(kN, kN, 11);
  static const Matrix b = RandomInput(kN, kN, 12);
  static Matrix c(kN, kN);
  const auto start = std::chrono::steady_clock::now();
  c.noalias() = a * b;
  benchmark::DoNotOptimize(c.data());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
constexpr double kSgemmFlops = 2.0 * 1024 * 1024 * 1024;

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
  // The product rate against the sgemm peak, in interleaved rounds (one
  // sgemm, then 10 iterations), best of each: a VM's speed drifts over
  // seconds, and both sides of the ratio should see the same machine.
  double best_peak = 1e30, best_iteration = 1e30;
  for (int round = 0; round < 12; ++round) {
    best_peak = std::min(best_peak, SgemmSeconds());
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) {
      absl::StatusOr<float> loss = net->ComputeGradients(x, labels, nullptr);
      benchmark::DoNotOptimize(loss);
      (*optimizer)->Update(params);
    }
    best_iteration = std::min(
        best_iteration,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 10);
  }
  const double rate = TrainIterationFlops(config, batch) / best_iteration;
  const double peak = kSgemmFlops / best_peak;
  state.counters["gflops"] = rate / 1e9;
  state.counters["peak_gflops"] = peak / 1e9;
  state.counters["of_peak"] = rate / peak;
  state.SetItemsProcessed(state.iterations() * batch);
}

enum class InferenceNet { kBatchNorm, kFolded, kNoBatchNorm };

// The seed network with BatchNorm (running statistics moved off their
// initial values, as after training), its fold, or the network without BN.
absl::StatusOr<Network<float>> InferenceNetwork(InferenceNet which) {
  absl::StatusOr<Network<float>> net =
      Network<float>::Create(SeedConfig(which != InferenceNet::kNoBatchNorm), 1);
  if (!net.ok() || which == InferenceNet::kNoBatchNorm) return net;
  std::map<std::string, Matrix> tensors = net->ExportTensors();
  for (auto& [name, tensor] : tensors) {
    const int cols = static_cast<int>(tensor.cols());
    if (name.rfind("running_mean", 0) == 0) {
      tensor = (RandomInput(1, cols, 5).array() - 0.5f).matrix();
    } else if (name.rfind("running_var", 0) == 0) {
      tensor = (RandomInput(1, cols, 6).array() + 0.5f).matrix();
    }
  }
  if (absl::Status status = net->ImportTensors(tensors); !status.ok()) return status;
  if (which == InferenceNet::kBatchNorm) return net;
  return FoldBatchNorm(*net);
}

void Inference(benchmark::State& state, InferenceNet which) {
  absl::StatusOr<Network<float>> net = InferenceNetwork(which);
  if (!net.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  const int batch = static_cast<int>(state.range(0));
  const Matrix x = RandomInput(batch, net->config().input_size, 4);
  for (auto _ : state) {
    absl::StatusOr<Matrix> probabilities = net->PredictProbabilities(x, BnMode::kInference);
    benchmark::DoNotOptimize(probabilities);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// Seconds per PredictProbabilities call over `calls` calls.
double InferenceSeconds(const Network<float>& net, const Matrix& x, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    absl::StatusOr<Matrix> probabilities = net.PredictProbabilities(x, BnMode::kInference);
    benchmark::DoNotOptimize(probabilities);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls;
}

void BM_SeedNetFoldedOverNoBn(benchmark::State& state) {
  absl::StatusOr<Network<float>> unfolded = InferenceNetwork(InferenceNet::kBatchNorm);
  absl::StatusOr<Network<float>> folded = InferenceNetwork(InferenceNet::kFolded);
  absl::StatusOr<Network<float>> plain = InferenceNetwork(InferenceNet::kNoBatchNorm);
  if (!unfolded.ok() || !folded.ok() || !plain.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  const int batch = static_cast<int>(state.range(0));
  const Matrix x = RandomInput(batch, 784, 4);
  // About 3 ms per network and round; 40 rounds.
  const int calls = std::max(1, static_cast<int>(3e-3 / InferenceSeconds(*plain, x, 3)));
  constexpr int kRounds = 40;
  std::vector<double> folded_ratio, unfolded_ratio;
  double best_unfolded = 1e30, best_folded = 1e30, best_plain = 1e30;
  for (auto _ : state) {
    for (int round = 0; round < kRounds; ++round) {
      // The order turns from round to round, so that none always runs first.
      const Network<float>* nets[3] = {&*plain, &*folded, &*unfolded};
      double seconds[3];
      for (int k = 0; k < 3; ++k) {
        const int n = (round + k) % 3;
        seconds[n] = InferenceSeconds(*nets[n], x, calls);
      }
      const double p = seconds[0], f = seconds[1], u = seconds[2];
      best_plain = std::min(best_plain, p);
      best_folded = std::min(best_folded, f);
      best_unfolded = std::min(best_unfolded, u);
      folded_ratio.push_back(f / p);
      unfolded_ratio.push_back(u / p);
    }
  }
  // The median of each round's ratio (neighbouring measurements see the same
  // machine), and the best round's time of each network.
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  state.counters["folded_over_nobn"] = median(folded_ratio);
  state.counters["unfolded_over_nobn"] = median(unfolded_ratio);
  state.counters["nobn_us"] = best_plain * 1e6;
  state.counters["folded_us"] = best_folded * 1e6;
  state.counters["unfolded_us"] = best_unfolded * 1e6;
}

void BM_SeedNetTrainIteration(benchmark::State& state) { TrainIteration(state, true); }
void BM_SeedNetTrainIterationNoBn(benchmark::State& state) { TrainIteration(state, false); }
void BM_SeedNetInference(benchmark::State& state) { Inference(state, InferenceNet::kBatchNorm); }
void BM_SeedNetInferenceFolded(benchmark::State& state) {
  Inference(state, InferenceNet::kFolded);
}
void BM_SeedNetInferenceNoBn(benchmark::State& state) {
  Inference(state, InferenceNet::kNoBatchNorm);
}

BENCHMARK(BM_SeedNetTrainIteration)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetTrainIterationNoBn)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetInference)->Arg(1)->Arg(256)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetInferenceFolded)->Arg(1)->Arg(256)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetInferenceNoBn)->Arg(1)->Arg(256)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedNetFoldedOverNoBn)->Arg(1)->Arg(256)->Arg(1000)->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bnserve
