// bnctl predict (data read here, sent as a tensor) and bnctl evaluate (a
// server-side data spec).
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/builtin_datasets.h"
#include "core/idx_reader.h"
#include "client/commands.h"
#include "client/data_dir.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

// Reads the rows to predict from a built-in data set or an IDX pair on this
// machine. Labels are empty when only images are given.
absl::StatusOr<Dataset> ReadLocalData(const std::string& data_dir, const std::string& dataset,
                                      const std::string& split_name,
                                      const std::string& idx_images,
                                      const std::string& idx_labels, int limit) {
  if (!idx_images.empty()) {
    Dataset data;
    data.name = idx_images;
    absl::StatusOr<Matrix> images = ReadIdxImages(idx_images);
    if (!images.ok()) return images.status();
    data.features = *std::move(images);
    if (!idx_labels.empty()) {
      absl::StatusOr<Labels> labels = ReadIdxLabels(idx_labels);
      if (!labels.ok()) return labels.status();
      if (labels->size() != data.features.rows()) {
        return absl::InvalidArgumentError(absl::StrCat(
            idx_labels, " has ", labels->size(), " labels for ", data.features.rows(),
            " images"));
      }
      data.labels = *std::move(labels);
    }
    if (limit > 0 && limit < data.size()) {
      Matrix head = data.features.topRows(limit);
      data.features = std::move(head);
      if (data.labels.size() > 0) {
        Labels head_labels = data.labels.head(limit);
        data.labels = std::move(head_labels);
      }
    }
    return data;
  }
  if (dataset.empty()) {
    return absl::InvalidArgumentError("give --dataset NAME or --idx-images FILE");
  }
  absl::StatusOr<Split> split = bnserve::ParseSplit(split_name);
  if (!split.ok()) return split.status();
  return LoadBuiltinDataset(data_dir, dataset, *split, limit);
}

v1::Tensor ToTensor(const Matrix& features) {
  v1::Tensor tensor;
  tensor.add_shape(features.rows());
  tensor.add_shape(features.cols());
  tensor.mutable_values()->Resize(static_cast<int>(features.size()), 0.0f);
  std::copy(features.data(), features.data() + features.size(),
            tensor.mutable_values()->mutable_data());
  return tensor;
}

struct DataFlags {
  std::string dataset;
  std::string split = "test";
  std::string idx_images;
  std::string idx_labels;
  int limit = 0;
  std::string bn_mode = "inference";
};

// Where predict and evaluate read their data: predict on the client, evaluate
// on the server. Only the help texts differ.
enum class DataLocation { kLocal, kServer };

// The model selection, data and BN-mode flags predict and evaluate share.
void AddModelAndDataFlags(ArgParser* parser, DataLocation location, std::string* model,
                          ModelSelectorFlags* selector, DataFlags* data_flags) {
  const bool local = location == DataLocation::kLocal;
  parser->AddString("model", model, "model name (required)");
  AddModelSelectorFlags(parser, selector);
  parser->AddString("dataset", &data_flags->dataset,
                    local ? "built-in data set read locally" : "built-in data set on the server");
  parser->AddString("split", &data_flags->split, "train | test (default test)");
  parser->AddString("idx-images", &data_flags->idx_images,
                    local ? "local IDX images file" : "IDX images on the server");
  parser->AddString("idx-labels", &data_flags->idx_labels,
                    local ? "local IDX labels file (optional)" : "IDX labels on the server");
  parser->AddInt("limit", &data_flags->limit,
                 local ? "rows to send (default 100; 0: all)" : "first N samples (default all)");
  parser->AddString("bn-mode", &data_flags->bn_mode, "inference | batch (default inference)");
}

}  // namespace

int RunPredict(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(
      "bnctl predict --model NAME [--version N|--alias A] (--dataset D [--split S] | "
      "--idx-images F [--idx-labels F]) [--limit N] [--bn-mode inference|batch]");
  std::string model;
  ModelSelectorFlags selector;
  DataFlags data_flags;
  data_flags.limit = 100;
  std::string data_dir_flag;
  int show = 10;
  AddModelAndDataFlags(&parser, DataLocation::kLocal, &model, &selector, &data_flags);
  parser.AddString("data-dir", &data_dir_flag, kDataDirFlagHelp);
  parser.AddInt("show", &show, "rows to print (default 10)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  absl::StatusOr<v1::ModelRef> ref = BuildModelRef(model, selector);
  if (!ref.ok()) return ReportUsageError(ref.status(), parser);
  absl::StatusOr<v1::BnMode> bn_mode = ParseBnMode(data_flags.bn_mode);
  if (!bn_mode.ok()) return ReportUsageError(bn_mode.status(), parser);
  const DataDirChoice data_dir = FindDataDir(ThisProcessDataDirSources(data_dir_flag));
  absl::StatusOr<Dataset> data =
      ReadLocalData(data_dir.path, data_flags.dataset, data_flags.split, data_flags.idx_images,
                    data_flags.idx_labels, data_flags.limit);
  if (!data.ok()) {
    return ReportError(data_flags.idx_images.empty() ? ExplainDataDir(data.status(), data_dir)
                                                     : data.status());
  }

  v1::PredictRequest request;
  *request.mutable_model() = *ref;
  *request.mutable_inputs() = ToTensor(data->features);
  request.set_bn_mode(*bn_mode);
  ClientConnection connection(globals);
  v1::PredictResponse response;
  absl::Time start = absl::Now();
  grpc::Status status =
      connection.inference().Predict(connection.NewContext().get(), request, &response);
  absl::Duration elapsed = absl::Now() - start;
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(response) << std::endl;
    return kExitOk;
  }

  const bool labelled = data->labels.size() == data->size();
  const int rows = response.predicted_classes_size();
  const int classes =
      response.probabilities().shape_size() == 2 ? response.probabilities().shape(1) : 0;
  std::cout << absl::StrFormat("model %s version %d: %d rows in %.1f ms (%s)\n",
                               response.model_name(), response.model_version(), rows,
                               absl::ToDoubleMilliseconds(elapsed),
                               v1::BnMode_Name(*bn_mode));
  std::cout << (labelled ? "  row  predicted  probability  label\n"
                         : "  row  predicted  probability\n");
  for (int i = 0; i < std::min(rows, show); ++i) {
    const int predicted = response.predicted_classes(i);
    const float probability =
        classes > 0 ? response.probabilities().values(i * classes + predicted) : 0.0f;
    std::cout << absl::StrFormat("%5d  %9d  %11.4f", i, predicted, probability);
    if (labelled) {
      std::cout << absl::StrFormat("  %5d%s", data->labels(i),
                                   data->labels(i) == predicted ? "" : "  x");
    }
    std::cout << "\n";
  }
  if (rows > show) std::cout << "  ... " << rows - show << " more rows\n";
  std::vector<int> counts(std::max(classes, 1), 0);
  int correct = 0;
  for (int i = 0; i < rows; ++i) {
    const int predicted = response.predicted_classes(i);
    if (predicted >= 0 && predicted < static_cast<int>(counts.size())) ++counts[predicted];
    if (labelled && data->labels(i) == predicted) ++correct;
  }
  std::cout << "predicted class counts:";
  for (size_t c = 0; c < counts.size(); ++c) std::cout << " " << c << ":" << counts[c];
  std::cout << "\n";
  if (labelled && rows > 0) {
    std::cout << absl::StrFormat("accuracy %.4f (%d/%d)\n", double{1.0} * correct / rows,
                                 correct, rows);
  }
  return kExitOk;
}

int RunEvaluate(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(
      "bnctl evaluate --model NAME [--version N|--alias A] --dataset D [--split test] "
      "[--limit N] [--bn-mode inference|batch]");
  std::string model;
  ModelSelectorFlags selector;
  DataFlags data_flags;
  data_flags.dataset = "mnist-digits";
  AddModelAndDataFlags(&parser, DataLocation::kServer, &model, &selector, &data_flags);
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  absl::StatusOr<v1::ModelRef> ref = BuildModelRef(model, selector);
  if (!ref.ok()) return ReportUsageError(ref.status(), parser);
  absl::StatusOr<v1::BnMode> bn_mode = ParseBnMode(data_flags.bn_mode);
  if (!bn_mode.ok()) return ReportUsageError(bn_mode.status(), parser);

  v1::EvaluateRequest request;
  *request.mutable_model() = *ref;
  request.set_bn_mode(*bn_mode);
  if (!data_flags.idx_images.empty()) {
    v1::IdxFiles* idx = request.mutable_data()->mutable_idx();
    idx->set_images_path(data_flags.idx_images);
    idx->set_labels_path(data_flags.idx_labels);
    idx->set_limit(data_flags.limit);
  } else {
    absl::StatusOr<v1::Split> split = ParseProtoSplit(data_flags.split);
    if (!split.ok()) return ReportUsageError(split.status(), parser);
    v1::BuiltinData* builtin = request.mutable_data()->mutable_builtin();
    builtin->set_name(data_flags.dataset);
    builtin->set_split(*split);
    builtin->set_limit(data_flags.limit);
  }
  ClientConnection connection(globals);
  v1::EvaluateResponse response;
  grpc::Status status =
      connection.inference().Evaluate(connection.NewContext().get(), request, &response);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(response) << std::endl;
    return kExitOk;
  }
  const int k = response.num_classes();
  std::cout << absl::StrFormat("model %s version %d on %d examples (%s)\n",
                               response.model_name(), response.model_version(),
                               response.num_examples(), v1::BnMode_Name(*bn_mode));
  std::cout << absl::StrFormat("loss      %.4f\naccuracy  %.4f\n", response.loss(),
                               response.accuracy());
  std::cout << "per-class accuracy:\n";
  for (int c = 0; c < response.per_class_accuracy_size(); ++c) {
    std::cout << absl::StrFormat("  %2d  %.4f\n", c, response.per_class_accuracy(c));
  }
  if (k > 0 && response.confusion_matrix_size() == k * k) {
    std::cout << "confusion matrix (row: true class, column: predicted):\n      ";
    for (int c = 0; c < k; ++c) std::cout << absl::StrFormat("%6d", c);
    std::cout << "\n";
    for (int r = 0; r < k; ++r) {
      std::cout << absl::StrFormat("  %2d  ", r);
      for (int c = 0; c < k; ++c) {
        std::cout << absl::StrFormat("%6d", response.confusion_matrix(r * k + c));
      }
      std::cout << "\n";
    }
  }
  return kExitOk;
}

}  // namespace bnserve
