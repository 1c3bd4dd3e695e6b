// bnctl inspect: the book's activation-distribution figures (sections 6.2.2
// and 6.3) in the terminal. Runs InferenceService.Inspect on a stored version
// or an untrained network built from flags, and prints, per hidden layer, one
// line per output (Affine, BatchNorm, activation): its range, mean, std and a
// compact text histogram.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

// "NAME[:SPLIT[:LIMIT]]", e.g. "mnist-digits:test:1000" (split default test,
// limit default all).
absl::StatusOr<v1::BuiltinData> ParseDataFlag(const std::string& text) {
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.empty() || parts.size() > 3 || parts[0].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--data wants NAME[:SPLIT[:LIMIT]], got '", text, "'"));
  }
  v1::BuiltinData data;
  data.set_name(parts[0]);
  absl::StatusOr<v1::Split> split = ParseProtoSplit(parts.size() > 1 ? parts[1] : "test");
  if (!split.ok()) return split.status();
  data.set_split(*split);
  if (parts.size() > 2) {
    int limit = 0;
    if (!absl::SimpleAtoi(parts[2], &limit) || limit <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data: the limit must be a positive integer, got '", parts[2], "'"));
    }
    data.set_limit(limit);
  }
  return data;
}

// "MIN,MAX", e.g. "-1,1".
absl::Status ParseRange(const std::string& text, v1::InspectRequest* request) {
  const std::vector<std::string> parts = absl::StrSplit(text, ',');
  double min = 0, max = 0;
  if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &min) ||
      !absl::SimpleAtod(parts[1], &max)) {
    return absl::InvalidArgumentError(absl::StrCat("--range wants MIN,MAX, got '", text, "'"));
  }
  request->set_range_min(min);
  request->set_range_max(max);
  return absl::OkStatus();
}

// One character per bin, its height on a scale of the histogram's largest bin.
std::string Sparkline(const v1::Histogram& histogram) {
  // ' ' only for an empty bin, '.' for a bin under 1/6 of the largest, '#'
  // for the largest.
  static constexpr char kLevels[] = " .:-=+*#";
  int64_t largest = 0;
  for (int64_t count : histogram.counts()) largest = std::max(largest, count);
  std::string line;
  for (int64_t count : histogram.counts()) {
    const int level = count > 0 ? 1 + static_cast<int>(count * 6 / largest) : 0;
    line += kLevels[level];
  }
  return line;
}

std::string FormatHistogram(const char* what, const v1::Histogram& histogram) {
  std::string line = absl::StrFormat("  %-10s [%8.3f, %8.3f]  mean %8.4f  std %8.4f  |%s|",
                                     what, histogram.min(), histogram.max(), histogram.mean(),
                                     histogram.std(), Sparkline(histogram));
  if (histogram.below() > 0 || histogram.above() > 0) {
    absl::StrAppend(&line, absl::StrFormat("  below %d above %d", histogram.below(),
                                           histogram.above()));
  }
  return line;
}

}  // namespace

int RunInspect(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(
      "bnctl inspect (--model NAME [--version N|--alias A] | --untrained [--hidden 100,...] "
      "[--weight-std 0.01] [--activation sigmoid] [--no-batchnorm] ...) "
      "[--random-rows 1000 | --data mnist-digits:test:1000] [--bn-mode inference|batch] "
      "[--bins 30] [--range -1,1]");
  std::string model;
  ModelSelectorFlags selector;
  bool untrained = false;
  std::vector<int> hidden = {100, 100, 100, 100, 100};
  int input_size = 0;
  int output_size = 10;
  double weight_std = 0.01;
  std::string weight_init;
  std::string activation = "sigmoid";
  bool batchnorm = true;
  int random_rows = 0;
  std::string data;
  std::string bn_mode = "inference";
  int bins = 30;
  std::string range;
  int seed = 0;
  parser.AddString("model", &model, "a stored model (or --untrained)");
  AddModelSelectorFlags(&parser, &selector);
  parser.AddBool("untrained", &untrained, "a freshly initialised network from these flags:");
  parser.AddIntList("hidden", &hidden, "  hidden layer sizes (default 100,100,100,100,100)");
  parser.AddInt("input-size", &input_size,
                "  features (default 100 with --random-rows, 784 with --data)");
  parser.AddInt("output-size", &output_size, "  classes (default 10)");
  parser.AddDouble("weight-std", &weight_std, "  weight init stddev (default 0.01)");
  parser.AddString("weight-init", &weight_init, "  he | xavier | STD (overrides --weight-std)");
  parser.AddString("activation", &activation, "  relu | sigmoid | tanh (default sigmoid)");
  parser.AddBool("batchnorm", &batchnorm, "  BatchNorm after each Affine (--no-batchnorm: off)");
  parser.AddInt("seed", &seed, "seed of the weights and the random rows (default 0)");
  parser.AddInt("random-rows", &random_rows, "N(0, 1) rows (default 1000 without --data)");
  parser.AddString("data", &data, "a built-in data set on the server, NAME[:SPLIT[:LIMIT]]");
  parser.AddString("bn-mode", &bn_mode, "inference | batch (default inference)");
  parser.AddInt("bins", &bins, "bins of every histogram, 1..1000 (default 30)");
  parser.AddString("range", &range, "MIN,MAX of every histogram (default each its own)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;

  v1::InspectRequest request;
  if (untrained == !model.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("give --model NAME or --untrained"),
                            parser);
  }
  if (!model.empty()) {
    absl::StatusOr<v1::ModelRef> ref = BuildModelRef(model, selector);
    if (!ref.ok()) return ReportUsageError(ref.status(), parser);
    *request.mutable_model() = *ref;
  } else {
    v1::NetworkConfig* network = request.mutable_untrained()->mutable_network();
    network->set_input_size(input_size > 0 ? input_size : (data.empty() ? 100 : 784));
    for (int size : hidden) network->add_hidden_sizes(size);
    network->set_output_size(output_size);
    absl::StatusOr<v1::Activation> parsed = ParseProtoActivation(activation);
    if (!parsed.ok()) return ReportUsageError(parsed.status(), parser);
    network->set_activation(*parsed);
    absl::StatusOr<v1::WeightInit> init =
        ParseProtoWeightInit(weight_init.empty() ? absl::StrCat(weight_std) : weight_init);
    if (!init.ok()) return ReportUsageError(init.status(), parser);
    *network->mutable_weight_init() = *init;
    network->set_use_batchnorm(batchnorm);
    request.mutable_untrained()->set_seed(static_cast<uint64_t>(seed));
  }
  if (!data.empty() && random_rows > 0) {
    return ReportUsageError(absl::InvalidArgumentError("give --random-rows or --data, not both"),
                            parser);
  }
  if (!data.empty()) {
    absl::StatusOr<v1::BuiltinData> builtin = ParseDataFlag(data);
    if (!builtin.ok()) return ReportUsageError(builtin.status(), parser);
    *request.mutable_data()->mutable_builtin() = *builtin;
  } else {
    request.set_random_normal_rows(parser.IsSet("random-rows") ? random_rows : 1000);
  }
  absl::StatusOr<v1::BnMode> mode = ParseBnMode(bn_mode);
  if (!mode.ok()) return ReportUsageError(mode.status(), parser);
  request.set_bn_mode(*mode);
  request.set_bins(bins);
  if (!range.empty()) {
    if (absl::Status parsed = ParseRange(range, &request); !parsed.ok()) {
      return ReportUsageError(parsed, parser);
    }
  }
  request.set_seed(static_cast<uint64_t>(seed));

  ClientConnection connection(globals);
  v1::InspectResponse response;
  grpc::Status status =
      connection.inference().Inspect(connection.NewContext().get(), request, &response);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(response) << std::endl;
    return kExitOk;
  }
  const std::string what =
      response.model_name().empty()
          ? std::string("untrained network")
          : absl::StrFormat("model %s version %d", response.model_name(),
                            response.model_version());
  std::cout << absl::StrFormat("%s (%s), %d rows, %s\n", what, FormatNetwork(response.network()),
                               response.num_examples(), v1::BnMode_Name(response.bn_mode()));
  for (const v1::LayerInspection& layer : response.layers()) {
    std::cout << "layer " << layer.layer() << "\n";
    std::cout << FormatHistogram("affine", layer.affine_output()) << "\n";
    if (layer.has_batchnorm_output()) {
      std::cout << FormatHistogram("batchnorm", layer.batchnorm_output()) << "\n";
    }
    std::cout << FormatHistogram("activation", layer.activation_output()) << "\n";
  }
  return kExitOk;
}

}  // namespace bnserve
