// bnserve-experiment: the book's Batch Normalization comparison (6.3.2) on
// the first 1,000 mnist-digits training images.
//
//   bnserve-experiment [--weight_std=0.05] [--seed=1] [--data_dir=var/data]
//   bnserve-experiment --sweep     # the book's 16 weight scales, final accuracies
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "core/batchnorm_experiment.h"
#include "core/builtin_datasets.h"
#include "core/dataset.h"

ABSL_FLAG(double, weight_std, 0.05, "Std of the initial weights of both networks");
ABSL_FLAG(bool, sweep, false,
          "Run the book's 16 weight stds (np.logspace(0, -4, num=16)) and print final "
          "accuracies");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the weights and the batch order");
ABSL_FLAG(int, epochs, 20, "Epochs of 10 batches of 100");
ABSL_FLAG(std::string, data_dir, "",
          "Data directory holding mnist-digits/ (default: $BNSERVE_DATA_DIR or var/data)");

namespace bnserve {
namespace {

int Run() {
  std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) data_dir = DefaultDataDir();
  BatchNormExperimentOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.epochs = absl::GetFlag(FLAGS_epochs);
  absl::StatusOr<Dataset> train =
      LoadBuiltinDataset(data_dir, "mnist-digits", Split::kTrain, options.train_size);
  if (!train.ok()) {
    std::fprintf(stderr, "bnserve-experiment: %s\n", train.status().ToString().c_str());
    return 1;
  }
  std::printf("784-100x5-10 ReLU, SGD lr %g, batch %d, %d %s images, %d epochs, seed %llu\n",
              options.learning_rate, options.batch_size, train->size(), train->name.c_str(),
              options.epochs, static_cast<unsigned long long>(options.seed));

  if (absl::GetFlag(FLAGS_sweep)) {
    std::printf("final train accuracy by initial weight std\n");
    std::printf("%10s  %9s  %6s\n", "weight_std", "batchnorm", "plain");
    for (double std : BookWeightStds()) {
      options.weight_std = std;
      absl::StatusOr<BatchNormComparison> result = RunBatchNormComparison(*train, options);
      if (!result.ok()) {
        std::fprintf(stderr, "bnserve-experiment: %s\n", result.status().ToString().c_str());
        return 1;
      }
      std::printf("%10.3e  %9.3f  %6.3f\n", std, result->final_batchnorm_accuracy(),
                  result->final_plain_accuracy());
      std::fflush(stdout);
    }
    return 0;
  }

  options.weight_std = absl::GetFlag(FLAGS_weight_std);
  absl::StatusOr<BatchNormComparison> result = RunBatchNormComparison(*train, options);
  if (!result.ok()) {
    std::fprintf(stderr, "bnserve-experiment: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("weight std %g: train accuracy (BatchNorm in inference mode)\n",
              options.weight_std);
  std::printf("%5s  %9s  %6s\n", "epoch", "batchnorm", "plain");
  for (size_t i = 0; i < result->batchnorm.size(); ++i) {
    std::printf("%5d  %9.3f  %6.3f\n", result->batchnorm[i].epoch,
                result->batchnorm[i].train_accuracy, result->plain[i].train_accuracy);
  }
  std::printf("final train accuracy: batchnorm %.3f plain %.3f\n",
              result->final_batchnorm_accuracy(), result->final_plain_accuracy());
  return 0;
}

}  // namespace
}  // namespace bnserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The book's BatchNorm experiment: trains a 784-100x5-10 ReLU network with and "
      "without BatchNorm on 1,000 mnist-digits images and prints training accuracy.");
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "bnserve-experiment: unexpected argument %s\n", rest[1]);
    return 2;
  }
  return bnserve::Run();
}
