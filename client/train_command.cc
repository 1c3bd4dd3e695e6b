// bnctl train: submits a training job with every hyperparameter as a flag.
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

struct TrainFlags {
  std::string model;
  std::vector<int> hidden = {100, 100, 100, 100, 100};
  int input_size = 0;
  int output_size = 0;
  std::string activation = "relu";
  std::string weight_init = "he";
  bool batchnorm = true;
  double dropout = 0;
  double weight_decay = 0;
  double bn_momentum = 0.9;
  double bn_eps = 1e-6;
  std::string optimizer = "sgd";
  double lr = 0.01;
  double momentum = 0.9;
  double decay_rate = 0.99;
  double beta1 = 0.9;
  double beta2 = 0.999;
  int epochs = 20;
  int batch_size = 100;
  std::string seed = "0";
  std::string dataset = "mnist-digits";
  std::string split = "train";
  int limit = 0;
  std::string idx_images;
  std::string idx_labels;
  std::string validation_dataset;
  std::string validation_split = "test";
  int validation_limit = 0;
  std::string description;
  bool follow = false;
};

void AddTrainFlags(ArgParser* parser, TrainFlags* f) {
  parser->AddString("model", &f->model, "model name to register the result under (required)");
  parser->AddIntList("hidden", &f->hidden, "hidden layer widths (default 100,100,100,100,100)");
  parser->AddInt("input-size", &f->input_size, "features per row (default: from the data)");
  parser->AddInt("output-size", &f->output_size, "number of classes (default 10)");
  parser->AddString("activation", &f->activation, "relu | sigmoid | tanh (default relu)");
  parser->AddString("weight-init", &f->weight_init, "he | xavier | a stddev such as 0.05");
  parser->AddBool("batchnorm", &f->batchnorm, "BatchNorm after each hidden Affine (default on)");
  parser->AddDouble("dropout", &f->dropout, "dropout ratio in [0, 1) (default 0)");
  parser->AddDouble("weight-decay", &f->weight_decay, "L2 weight decay lambda (default 0)");
  parser->AddDouble("bn-momentum", &f->bn_momentum, "BatchNorm running-average momentum (0.9)");
  parser->AddDouble("bn-eps", &f->bn_eps, "BatchNorm epsilon (1e-6)");
  parser->AddString("optimizer", &f->optimizer,
                    "sgd | momentum | nesterov | adagrad | rmsprop | adam (default sgd)");
  parser->AddDouble("lr", &f->lr, "learning rate (default 0.01, Adam 0.001)");
  parser->AddDouble("momentum", &f->momentum, "Momentum/Nesterov momentum (0.9)");
  parser->AddDouble("decay-rate", &f->decay_rate, "RMSprop decay rate (0.99)");
  parser->AddDouble("beta1", &f->beta1, "Adam beta1 (0.9)");
  parser->AddDouble("beta2", &f->beta2, "Adam beta2 (0.999)");
  parser->AddInt("epochs", &f->epochs, "number of epochs (default 20)");
  parser->AddInt("batch-size", &f->batch_size, "mini-batch size (default 100)");
  parser->AddString("seed", &f->seed, "seed of init, batch order and dropout (default 0)");
  parser->AddString("dataset", &f->dataset, "built-in training set (default mnist-digits)");
  parser->AddString("split", &f->split, "train | test (default train)");
  parser->AddInt("limit", &f->limit, "use the first N samples (default all)");
  parser->AddString("idx-images", &f->idx_images, "IDX images on the server (instead of --dataset)");
  parser->AddString("idx-labels", &f->idx_labels, "IDX labels on the server");
  parser->AddString("validation-dataset", &f->validation_dataset,
                    "built-in validation set (default none)");
  parser->AddString("validation-split", &f->validation_split, "train | test (default test)");
  parser->AddInt("validation-limit", &f->validation_limit, "validation samples (default all)");
  parser->AddString("description", &f->description, "free text kept with the job");
  parser->AddBool("follow", &f->follow, "watch the job until it ends");
}

absl::StatusOr<v1::TrainRequest> BuildTrainRequest(const TrainFlags& f,
                                                   const ArgParser& parser) {
  if (f.model.empty()) return absl::InvalidArgumentError("--model is required");
  v1::TrainRequest request;
  request.set_model_name(f.model);

  v1::NetworkConfig* network = request.mutable_network();
  network->set_input_size(f.input_size);
  for (int width : f.hidden) network->add_hidden_sizes(width);
  network->set_output_size(f.output_size);
  absl::StatusOr<v1::Activation> activation = ParseProtoActivation(f.activation);
  if (!activation.ok()) return activation.status();
  network->set_activation(*activation);
  absl::StatusOr<v1::WeightInit> init = ParseProtoWeightInit(f.weight_init);
  if (!init.ok()) return init.status();
  *network->mutable_weight_init() = *init;
  network->set_use_batchnorm(f.batchnorm);
  network->set_dropout_ratio(f.dropout);
  network->set_weight_decay_lambda(f.weight_decay);
  if (parser.IsSet("bn-momentum")) network->set_bn_momentum(f.bn_momentum);
  if (parser.IsSet("bn-eps")) network->set_bn_eps(f.bn_eps);

  v1::OptimizerConfig* optimizer = request.mutable_optimizer();
  absl::StatusOr<v1::OptimizerType> type = ParseOptimizer(f.optimizer);
  if (!type.ok()) return type.status();
  optimizer->set_type(*type);
  if (parser.IsSet("lr")) optimizer->set_learning_rate(f.lr);
  if (parser.IsSet("momentum")) optimizer->set_momentum(f.momentum);
  if (parser.IsSet("decay-rate")) optimizer->set_decay_rate(f.decay_rate);
  if (parser.IsSet("beta1")) optimizer->set_beta1(f.beta1);
  if (parser.IsSet("beta2")) optimizer->set_beta2(f.beta2);

  if (!f.idx_images.empty() || !f.idx_labels.empty()) {
    v1::IdxFiles* idx = request.mutable_train_data()->mutable_idx();
    idx->set_images_path(f.idx_images);
    idx->set_labels_path(f.idx_labels);
    idx->set_limit(f.limit);
  } else {
    v1::BuiltinData* builtin = request.mutable_train_data()->mutable_builtin();
    builtin->set_name(f.dataset);
    absl::StatusOr<v1::Split> split = ParseProtoSplit(f.split);
    if (!split.ok()) return split.status();
    builtin->set_split(*split);
    builtin->set_limit(f.limit);
  }
  if (!f.validation_dataset.empty()) {
    v1::BuiltinData* builtin = request.mutable_validation_data()->mutable_builtin();
    builtin->set_name(f.validation_dataset);
    absl::StatusOr<v1::Split> split = ParseProtoSplit(f.validation_split);
    if (!split.ok()) return split.status();
    builtin->set_split(*split);
    builtin->set_limit(f.validation_limit);
  }
  request.set_epochs(f.epochs);
  request.set_batch_size(f.batch_size);
  uint64_t seed = 0;
  if (!absl::SimpleAtoi(f.seed, &seed)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seed wants a non-negative integer, got '", f.seed, "'"));
  }
  request.set_seed(seed);
  request.set_description(f.description);
  return request;
}

}  // namespace

int RunTrain(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl train --model NAME [flags] [--follow]");
  TrainFlags flags;
  AddTrainFlags(&parser, &flags);
  std::vector<std::string> positional;
  if (std::optional<int> exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) {
    return *exit;
  }
  absl::StatusOr<v1::TrainRequest> request = BuildTrainRequest(flags, parser);
  if (!request.ok()) return ReportUsageError(request.status(), parser);

  ClientConnection connection(globals);
  v1::Job job;
  grpc::Status status =
      connection.training().Train(connection.NewContext().get(), *request, &job);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(job) << std::endl;
  } else {
    std::cout << "submitted " << job.job_id() << " (model " << job.model_name() << ", "
              << FormatNetwork(request->network()) << ", " << job.total_epochs()
              << " epochs)" << std::endl;
  }
  if (!flags.follow) return kExitOk;

  absl::StatusOr<v1::Job> final_job =
      WatchJobToEnd(&connection, globals, job.job_id(), /*print=*/true);
  if (!final_job.ok()) return ReportError(final_job.status());
  if (globals.json) {
    std::cout << ToJson(*final_job) << std::endl;
  } else {
    std::cout << FormatJobOutcome(*final_job) << std::endl;
  }
  return ExitCodeForJob(*final_job);
}

}  // namespace bnserve
