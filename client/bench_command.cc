// bnctl bench predict: the load tool. For each batch size and client count it
// drives Predict from N client threads (each on its own TCP connection) for a
// fixed time or call count, and then the same payload through
// bnserve.v1.Diagnostics/Echo on the same server: the gRPC floor, a call that
// parses the same request and returns a Predict-sized response without
// inference. Next to both it runs the same model in this process (core
// inference on the same rows, one thread) and reports Predict's p50 against
// floor p50 + model p50: what the server adds beyond the math and gRPC,
// measured in one run. It also drives the Open Inference Protocol's
// ModelInfer (gRPC, raw contents as tritonclient sends them) with the same
// rows and reports its throughput against Predict's. With --http HOST:PORT
// (the server's HTTP port) it also sends the same rows to the protocol's
// REST /infer, as JSON and as binary tensor data (Triton's extension: a JSON
// header, then the rows' little-endian floats), each client on its own
// kept-alive HTTP connection (libcurl), and parses every answer as a client
// would; "bin/pred" is REST binary's throughput over Predict's. Loopback
// only in practice: it talks to --server (and --http) and nothing else;
// every loop is bounded in time.
#include <algorithm>
#include <functional>
#include <iostream>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "bnserve/v1/diagnostics.grpc.pb.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "client/commands.h"
#include "client/data_dir.h"
#include "client/http_client.h"
#include "client/proto_format.h"
#include "core/batch_norm_folding.h"
#include "core/builtin_datasets.h"
#include "core/network.h"
#include "nlohmann/json.hpp"
#include "server/proto_convert.h"

namespace bnserve {
namespace {

// One client's connection and stubs.
struct BenchClient {
  explicit BenchClient(const GlobalOptions& globals)
      : connection(globals, /*own_connection=*/true),
        diagnostics(v1::Diagnostics::NewStub(connection.channel())),
        v2(inference::GRPCInferenceService::NewStub(connection.channel())) {}
  ClientConnection connection;
  std::unique_ptr<v1::Diagnostics::Stub> diagnostics;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2;
  HttpClient http;
};

using CallFn = std::function<absl::Status(BenchClient*)>;

struct LoadResult {
  int64_t calls = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  absl::Status error;  // the first failed call, if any

  double CallsPerSecond() const { return seconds > 0 ? calls / seconds : 0; }
  double Percentile(double p) const {
    if (latencies_ms.empty()) return 0;
    return latencies_ms[static_cast<size_t>(p * (latencies_ms.size() - 1))];
  }
};

// Runs `call` from clients[0..n) in parallel until `duration` passes or each
// client made `calls_per_client` calls (0: no count limit). Stops a client at
// its first error.
LoadResult RunLoad(std::vector<std::unique_ptr<BenchClient>>& clients, int n,
                   const CallFn& call, absl::Duration duration, int calls_per_client) {
  // A few untimed calls on every client first: a connection that sat idle
  // (for instance through the local model's timing) pays tens of
  // milliseconds on its first call again, which would land on whichever
  // method is measured first.
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) {
      if (!call(clients[i].get()).ok()) break;  // the timed loop reports it
    }
  }
  absl::Mutex mutex;
  LoadResult result;
  absl::Notification start;
  std::vector<std::thread> threads;
  absl::Time end;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::vector<double> latencies;
      absl::Status error;
      start.WaitForNotification();
      for (int k = 0; calls_per_client == 0 || k < calls_per_client; ++k) {
        absl::Time before = absl::Now();
        if (before >= end) break;
        absl::Status status = call(clients[i].get());
        if (!status.ok()) {
          error = status;
          break;
        }
        latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - before));
      }
      absl::MutexLock lock(&mutex);
      result.latencies_ms.insert(result.latencies_ms.end(), latencies.begin(),
                                 latencies.end());
      if (!error.ok() && result.error.ok()) result.error = error;
    });
  }
  const absl::Time begin = absl::Now();
  end = begin + duration;
  start.Notify();
  for (std::thread& thread : threads) thread.join();
  result.seconds = absl::ToDoubleSeconds(absl::Now() - begin);
  result.calls = static_cast<int64_t>(result.latencies_ms.size());
  std::sort(result.latencies_ms.begin(), result.latencies_ms.end());
  return result;
}

// The median of `values` (0 when empty).
double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// A ratio measured so that the machine's drift cancels: `rounds` rounds of
// `a` and `b` back to back (duration / rounds each, the order alternating
// from round to round), `ratio` of each round's two results (it may measure
// more, given the window; nullopt drops the round), and the median of the
// rounds' ratios. On a shared machine two long sequential runs seconds apart
// differed by 2x; paired short windows see the same load.
using RoundRatio = std::function<absl::StatusOr<std::optional<double>>(
    const LoadResult& of_a, const LoadResult& of_b, absl::Duration window)>;
absl::StatusOr<double> PairedRounds(std::vector<std::unique_ptr<BenchClient>>& clients, int n,
                                    const CallFn& a, const CallFn& b, absl::Duration duration,
                                    const RoundRatio& ratio, int rounds = 6) {
  std::vector<double> ratios;
  const absl::Duration window = duration / rounds;
  for (int round = 0; round < rounds; ++round) {
    LoadResult first = RunLoad(clients, n, round % 2 == 0 ? a : b, window, 0);
    if (!first.error.ok()) return first.error;
    LoadResult second = RunLoad(clients, n, round % 2 == 0 ? b : a, window, 0);
    if (!second.error.ok()) return second.error;
    absl::StatusOr<std::optional<double>> value =
        round % 2 == 0 ? ratio(first, second, window) : ratio(second, first, window);
    if (!value.ok()) return value.status();
    if (value->has_value()) ratios.push_back(**value);
  }
  return Median(std::move(ratios));
}

// Throughput of `b` over that of `a`, from PairedRounds.
absl::StatusOr<double> PairedRatio(std::vector<std::unique_ptr<BenchClient>>& clients, int n,
                                   const CallFn& a, const CallFn& b, absl::Duration duration) {
  return PairedRounds(clients, n, a, b, duration,
                      [](const LoadResult& of_a, const LoadResult& of_b,
                         absl::Duration) -> absl::StatusOr<std::optional<double>> {
                        if (of_a.CallsPerSecond() <= 0) return std::nullopt;
                        return of_b.CallsPerSecond() / of_a.CallsPerSecond();
                      });
}

// Predict's p50 over (floor p50 + model p50), from PairedRounds of Predict
// and Echo, each round timing the model in this process afterwards
// (`model_p50`, given half a window). The machine's drift (on a VM, the
// host's steal time) then falls on all three terms alike.
absl::StatusOr<double> PairedOverFloorPlusModel(
    std::vector<std::unique_ptr<BenchClient>>& clients, int n, const CallFn& predict,
    const CallFn& echo, const std::function<absl::StatusOr<double>(absl::Duration)>& model_p50,
    absl::Duration duration) {
  return PairedRounds(
      clients, n, predict, echo, duration,
      [&model_p50](const LoadResult& of_predict, const LoadResult& of_echo,
                   absl::Duration window) -> absl::StatusOr<std::optional<double>> {
        absl::StatusOr<double> model = model_p50(window / 2);
        if (!model.ok()) return model.status();
        const double floor_plus_model = of_echo.Percentile(0.5) + *model;
        if (floor_plus_model <= 0) return std::nullopt;
        return of_predict.Percentile(0.5) / floor_plus_model;
      });
}

grpc::Status CallPredict(BenchClient* client, const v1::PredictRequest& request) {
  v1::PredictResponse response;
  return client->connection.inference().Predict(client->connection.NewContext().get(),
                                                request, &response);
}

grpc::Status CallEcho(BenchClient* client, const v1::PredictRequest& request) {
  v1::PredictResponse response;
  return client->diagnostics->Echo(client->connection.NewContext().get(), request,
                                   &response);
}

// The V2 ModelInfer request for the rows of a Predict request: input "input"
// in raw contents (tritonclient's way), the model by name and version.
inference::ModelInferRequest ToModelInfer(const v1::PredictRequest& predict, int version) {
  inference::ModelInferRequest request;
  request.set_model_name(predict.model().name());
  request.set_model_version(std::to_string(version));
  if (predict.bn_mode() == v1::BATCH_STATISTICS) {
    (*request.mutable_parameters())["bn_mode"].set_string_param("batch_statistics");
  }
  inference::ModelInferRequest::InferInputTensor* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->mutable_shape()->Add(predict.inputs().shape().begin(), predict.inputs().shape().end());
  request.add_raw_input_contents()->assign(
      reinterpret_cast<const char*>(predict.inputs().values().data()),
      sizeof(float) * static_cast<size_t>(predict.inputs().values_size()));
  return request;
}

// One REST /infer body and what its answer must hold.
struct RestCall {
  HttpClientRequest request;
  bool binary = false;
  // Probabilities the answer must hold (rows x classes).
  size_t values = 0;
};

// The /infer URL of `ref` on `http` (host:port).
std::string InferUrl(const std::string& http, const v1::ModelRef& ref) {
  std::string url = absl::StrCat("http://", http, "/v2/models/", ref.name());
  if (ref.selector_case() == v1::ModelRef::kVersion) {
    absl::StrAppend(&url, "/versions/", ref.version());
  } else if (ref.selector_case() == v1::ModelRef::kAlias) {
    absl::StrAppend(&url, "/versions/", ref.alias());
  }
  return url + "/infer";
}

// The request's rows as a V2 REST /infer: JSON data, or a JSON header and
// binary tensor data with every output binary.
RestCall MakeRestCall(const std::string& http, const v1::PredictRequest& request, int classes,
                      bool binary) {
  using nlohmann::json;
  const v1::Tensor& inputs = request.inputs();
  json input = {{"name", "input"},
                {"shape", {inputs.shape(0), inputs.shape(1)}},
                {"datatype", "FP32"}};
  json parameters = json::object();
  if (request.bn_mode() == v1::BATCH_STATISTICS) parameters["bn_mode"] = "batch_statistics";
  RestCall call;
  call.binary = binary;
  call.values = static_cast<size_t>(inputs.shape(0)) * static_cast<size_t>(classes);
  call.request.method = "POST";
  call.request.url = InferUrl(http, request.model());
  const std::string data(reinterpret_cast<const char*>(inputs.values().data()),
                         sizeof(float) * static_cast<size_t>(inputs.values_size()));
  if (binary) {
    input["parameters"] = {{"binary_data_size", data.size()}};
    parameters["binary_data_output"] = true;
  } else {
    json values = json::array();
    for (float value : inputs.values()) values.push_back(static_cast<double>(value));
    input["data"] = std::move(values);
  }
  json body = {{"inputs", json::array({std::move(input)})}, {"parameters", parameters}};
  call.request.body = body.dump();
  if (binary) {
    call.request.headers.push_back(
        absl::StrCat("Inference-Header-Content-Length: ", call.request.body.size()));
    call.request.headers.push_back("Content-Type: application/octet-stream");
    call.request.body += data;
  } else {
    call.request.headers.push_back("Content-Type: application/json");
  }
  return call;
}

// Sends `call` and reads its answer as a client would: the whole JSON, or
// the JSON header and the probabilities' bytes.
absl::Status CallRest(BenchClient* client, const RestCall& call) {
  using nlohmann::json;
  absl::StatusOr<HttpReply> reply = client->http.Send(call.request);
  if (!reply.ok()) return reply.status();
  size_t json_size = reply->body.size();
  if (call.binary) {
    std::optional<std::string> header = reply->Header("Inference-Header-Content-Length");
    if (!header.has_value() || !absl::SimpleAtoi(*header, &json_size) ||
        json_size > reply->body.size()) {
      return absl::InternalError(absl::StrCat("HTTP ", reply->status,
                                              " without a binary answer: ",
                                              reply->body.substr(0, 200)));
    }
  }
  const json body = json::parse(reply->body.begin(), reply->body.begin() + json_size, nullptr,
                                /*allow_exceptions=*/false);
  if (reply->status != 200 || !body.is_object() || !body.contains("outputs")) {
    return absl::InternalError(
        absl::StrCat("HTTP ", reply->status, ": ", reply->body.substr(0, 200)));
  }
  for (const json& output : body["outputs"]) {
    if (output.value("name", "") != "probabilities") continue;
    size_t got = 0;
    if (call.binary) {
      got = output["parameters"].value("binary_data_size", size_t{0}) / sizeof(float);
    } else if (output.contains("data")) {
      got = output["data"].size();
    }
    if (got != call.values) {
      return absl::InternalError(absl::StrCat("REST answer has ", got, " probabilities, not ",
                                              call.values));
    }
    return absl::OkStatus();
  }
  return absl::InternalError("REST answer without probabilities");
}

// `rows` input rows of `features` values: the first rows of the local data set
// when it has that many features, else uniform noise in [0, 1).
v1::Tensor MakeInputs(const Dataset* data, int rows, int features) {
  v1::Tensor tensor;
  tensor.add_shape(rows);
  tensor.add_shape(features);
  tensor.mutable_values()->Resize(rows * features, 0.0f);
  float* values = tensor.mutable_values()->mutable_data();
  if (data != nullptr && data->feature_size() == features && data->size() > 0) {
    for (int r = 0; r < rows; ++r) {
      const float* row = data->features.row(r % data->size()).data();
      std::copy(row, row + features, values + static_cast<size_t>(r) * features);
    }
  } else {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    for (int i = 0; i < rows * features; ++i) values[i] = uniform(rng);
  }
  return tensor;
}

// The median time (ms) of the model's forward pass over `inputs` in this
// process: at least 10 passes, then until `budget` has passed.
absl::StatusOr<double> LocalModelP50(const Network<float>& network, const v1::Tensor& inputs,
                                     BnMode mode, absl::Duration budget) {
  absl::StatusOr<ConstMatrixMapT<float>> rows = MapTensor(inputs);
  if (!rows.ok()) return rows.status();
  std::vector<double> ms;
  const absl::Time end = absl::Now() + budget;
  while (ms.size() < 10 || absl::Now() < end) {
    const absl::Time before = absl::Now();
    absl::StatusOr<Matrix> probabilities = network.PredictProbabilities(*rows, mode);
    if (!probabilities.ok()) return probabilities.status();
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - before));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int RunBench(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(
      "bnctl bench predict --model NAME [--batch 1,256] [--clients 1,4] "
      "[--duration 5s | --calls N] [--http HOST:PORT]");
  std::string model;
  ModelSelectorFlags selector;
  std::vector<int> batches = {1, 256};
  std::vector<int> client_counts = {1, 4};
  absl::Duration duration = absl::Seconds(5);
  int calls = 0;
  std::string bn_mode_name = "inference";
  std::string dataset = "mnist-digits";
  std::string data_dir_flag;
  std::string http;
  bool floor = true;
  parser.AddString("model", &model, "model to load (required)");
  AddModelSelectorFlags(&parser, &selector);
  parser.AddIntList("batch", &batches, "rows per call, each measured (default 1,256)");
  parser.AddIntList("clients", &client_counts, "concurrent clients, each measured (default 1,4)");
  parser.AddDuration("duration", &duration,
                     "time per measurement (default 5s; with --calls: at most 60s)");
  parser.AddInt("calls", &calls, "calls per client per measurement (default: until --duration)");
  parser.AddString("bn-mode", &bn_mode_name, "inference | batch (default inference)");
  parser.AddString("dataset", &dataset, "local data set for the payload (default mnist-digits)");
  parser.AddString("data-dir", &data_dir_flag, kDataDirFlagHelp);
  parser.AddBool("floor", &floor, "also measure the Diagnostics/Echo floor (default on)");
  parser.AddString("http", &http,
                   "the server's HTTP port (host:port): also measure REST /infer, JSON and "
                   "binary");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  if (positional[0] != "predict") {
    return ReportUsageError(absl::InvalidArgumentError(absl::StrCat(
                                "unknown benchmark '", positional[0], "'; try predict")),
                            parser);
  }
  if (calls < 0) {
    return ReportUsageError(absl::InvalidArgumentError("--calls is negative"), parser);
  }
  if (calls > 0 && !parser.IsSet("duration")) duration = absl::Seconds(60);
  absl::StatusOr<v1::ModelRef> ref = BuildModelRef(model, selector);
  if (!ref.ok()) return ReportUsageError(ref.status(), parser);
  absl::StatusOr<v1::BnMode> bn_mode = ParseBnMode(bn_mode_name);
  if (!bn_mode.ok()) return ReportUsageError(bn_mode.status(), parser);

  // The model (its input size, and its tensors to run it here too), and a
  // quick NOT_FOUND before any load.
  ClientConnection control(globals);
  v1::GetModelRequest get;
  *get.mutable_model() = *ref;
  get.set_include_parameters(true);
  v1::ModelVersion version;
  grpc::Status status = control.registry().GetModel(control.NewContext().get(), get, &version);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  absl::StatusOr<Network<float>> local = NetworkFromVersion(version);
  if (!local.ok()) return ReportError(local.status());
  absl::StatusOr<BnMode> local_mode = BnModeFromProto(*bn_mode);
  if (!local_mode.ok()) return ReportError(local_mode.status());
  // The network the server runs: INFERENCE on a folding server is the fold.
  if (version.served_folded() && *local_mode == BnMode::kInference) {
    local = FoldBatchNorm(*local);
    if (!local.ok()) return ReportError(local.status());
  }
  const int features = version.network().input_size() > 0 ? version.network().input_size() : 784;
  const int classes = version.network().output_size() > 0 ? version.network().output_size() : 10;
  const bool rest = !http.empty();
  const DataDirChoice data_dir = FindDataDir(ThisProcessDataDirSources(data_dir_flag));
  absl::StatusOr<Dataset> data = LoadBuiltinDataset(
      data_dir.path, dataset, Split::kTest,
      *std::max_element(batches.begin(), batches.end()));
  if (!data.ok() && !globals.json) {
    std::cout << "payload: random values ("
              << ExplainDataDir(data.status(), data_dir).message() << ")\n";
  }

  const int max_clients = *std::max_element(client_counts.begin(), client_counts.end());
  std::vector<std::unique_ptr<BenchClient>> clients;
  for (int i = 0; i < max_clients; ++i) clients.push_back(std::make_unique<BenchClient>(globals));

  if (!globals.json) {
    std::cout << absl::StrFormat(
        "model %s version %d (%s), %s, server %s, %s per measurement\n", version.model_name(),
        version.version(), FormatNetwork(version.network()), v1::BnMode_Name(*bn_mode),
        globals.server,
        calls > 0 ? absl::StrCat(calls, " calls per client") : absl::FormatDuration(duration));
    std::cout << absl::StrFormat(
        "%6s %7s %10s %11s %8s %8s %12s %10s %6s %10s %8s %10s %8s", "batch", "clients",
        "calls/s", "rows/s", "p50 ms", "p99 ms", "floor call/s", "floor p50", "ratio",
        "model p50", "p50/f+m", "v2 call/s", "v2/pred");
    if (rest) {
      std::cout << absl::StrFormat(" %11s %9s %10s %9s %8s", "json call/s", "json p50",
                                   "bin call/s", "bin p50", "bin/pred");
    }
    std::cout << "\n";
  }
  bool floor_available = floor;
  for (int batch : batches) {
    v1::PredictRequest request;
    *request.mutable_model() = *ref;
    request.set_bn_mode(*bn_mode);
    *request.mutable_inputs() = MakeInputs(data.ok() ? &*data : nullptr, batch, features);
    const inference::ModelInferRequest infer = ToModelInfer(request, version.version());
    const CallFn call_predict = [&request](BenchClient* client) {
      return FromGrpcStatus(CallPredict(client, request));
    };
    const CallFn call_echo = [&request](BenchClient* client) {
      return FromGrpcStatus(CallEcho(client, request));
    };
    const CallFn call_v2 = [&infer](BenchClient* client) {
      inference::ModelInferResponse response;
      return FromGrpcStatus(
          client->v2->ModelInfer(client->connection.NewContext().get(), infer, &response));
    };
    const RestCall rest_json = MakeRestCall(http, request, classes, /*binary=*/false);
    const RestCall rest_binary = MakeRestCall(http, request, classes, /*binary=*/true);
    const CallFn call_json = [&rest_json](BenchClient* client) {
      return CallRest(client, rest_json);
    };
    const CallFn call_binary = [&rest_binary](BenchClient* client) {
      return CallRest(client, rest_binary);
    };
    // Warm-up: connect every client and touch the model once.
    for (auto& client : clients) {
      for (const CallFn* call : {&call_predict, &call_v2}) {
        if (absl::Status answer = (*call)(client.get()); !answer.ok()) return ReportError(answer);
      }
      if (rest) {
        for (const CallFn* call : {&call_json, &call_binary}) {
          if (absl::Status answer = (*call)(client.get()); !answer.ok()) {
            return ReportError(answer);
          }
        }
      }
      if (floor_available) {
        grpc::Status echo = CallEcho(client.get(), request);
        if (echo.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
          floor_available = false;
          if (!globals.json) {
            std::cout << "floor: n/a (this server does not register bnserve.v1.Diagnostics)\n";
          }
        } else if (!echo.ok()) {
          return ReportError(FromGrpcStatus(echo));
        }
      }
    }
    // The math alone, for the same rows, in this process.
    absl::StatusOr<double> model_p50 =
        LocalModelP50(*local, request.inputs(), *local_mode, absl::Seconds(1));
    if (!model_p50.ok()) return ReportError(model_p50.status());
    for (int n : client_counts) {
      LoadResult predict = RunLoad(clients, n, call_predict, duration, calls);
      if (!predict.error.ok()) return ReportError(predict.error);
      LoadResult echo;
      if (floor_available) {
        echo = RunLoad(clients, n, call_echo, duration, calls);
        if (!echo.error.ok()) return ReportError(echo.error);
      }
      LoadResult v2 = RunLoad(clients, n, call_v2, duration, calls);
      if (!v2.error.ok()) return ReportError(v2.error);
      // The ratios to Predict: paired rounds when measuring by time; a fixed
      // call count (a smoke test) keeps the single runs' ratio.
      double v2_ratio =
          predict.CallsPerSecond() > 0 ? v2.CallsPerSecond() / predict.CallsPerSecond() : 0;
      if (calls == 0) {
        absl::StatusOr<double> paired = PairedRatio(clients, n, call_predict, call_v2, duration);
        if (!paired.ok()) return ReportError(paired.status());
        v2_ratio = *paired;
      }
      LoadResult json_load;
      LoadResult binary_load;
      if (rest) {
        json_load = RunLoad(clients, n, call_json, duration, calls);
        if (!json_load.error.ok()) return ReportError(json_load.error);
        binary_load = RunLoad(clients, n, call_binary, duration, calls);
        if (!binary_load.error.ok()) return ReportError(binary_load.error);
      }
      double binary_over_predict =
          predict.CallsPerSecond() > 0 ? binary_load.CallsPerSecond() / predict.CallsPerSecond()
                                       : 0;
      if (rest && calls == 0) {
        absl::StatusOr<double> paired =
            PairedRatio(clients, n, call_predict, call_binary, duration);
        if (!paired.ok()) return ReportError(paired.status());
        binary_over_predict = *paired;
      }
      const double ratio =
          echo.CallsPerSecond() > 0 ? predict.CallsPerSecond() / echo.CallsPerSecond() : 0;
      // Predict's p50 over (floor p50 + model p50): 1 means the server adds
      // nothing to gRPC's cost and the math.
      double over =
          floor_available ? predict.Percentile(0.5) / (echo.Percentile(0.5) + *model_p50) : 0;
      if (floor_available && calls == 0) {
        absl::StatusOr<double> paired = PairedOverFloorPlusModel(
            clients, n, call_predict, call_echo,
            [&](absl::Duration budget) {
              return LocalModelP50(*local, request.inputs(), *local_mode, budget);
            },
            duration);
        if (!paired.ok()) return ReportError(paired.status());
        over = *paired;
      }
      if (globals.json) {
        std::cout << absl::StrFormat(
            "{\"batch\":%d,\"clients\":%d,\"calls\":%d,\"calls_per_second\":%.1f,"
            "\"rows_per_second\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
            "\"floor_calls_per_second\":%.1f,\"floor_p50_ms\":%.3f,\"ratio\":%.3f,"
            "\"model_p50_ms\":%.3f,\"p50_over_floor_plus_model\":%.3f,"
            "\"v2_grpc_calls_per_second\":%.1f,\"v2_grpc_p50_ms\":%.3f,"
            "\"v2_grpc_over_predict\":%.3f",
            batch, n, predict.calls, predict.CallsPerSecond(),
            predict.CallsPerSecond() * batch, predict.Percentile(0.5),
            predict.Percentile(0.99), echo.CallsPerSecond(), echo.Percentile(0.5), ratio,
            *model_p50, over, v2.CallsPerSecond(), v2.Percentile(0.5), v2_ratio);
        if (rest) {
          std::cout << absl::StrFormat(
              ",\"rest_json_calls_per_second\":%.1f,\"rest_json_p50_ms\":%.3f,"
              "\"rest_binary_calls_per_second\":%.1f,\"rest_binary_p50_ms\":%.3f,"
              "\"rest_binary_over_predict\":%.3f",
              json_load.CallsPerSecond(), json_load.Percentile(0.5),
              binary_load.CallsPerSecond(), binary_load.Percentile(0.5), binary_over_predict);
        }
        std::cout << "}\n";
      } else {
        std::cout << absl::StrFormat(
            "%6d %7d %10.1f %11.0f %8.3f %8.3f %12s %10s %6s %10.3f %8s %10.1f %8.2f", batch, n,
            predict.CallsPerSecond(), predict.CallsPerSecond() * batch,
            predict.Percentile(0.5), predict.Percentile(0.99),
            floor_available ? absl::StrFormat("%.1f", echo.CallsPerSecond()) : "n/a",
            floor_available ? absl::StrFormat("%.3f", echo.Percentile(0.5)) : "n/a",
            floor_available ? absl::StrFormat("%.2f", ratio) : "n/a", *model_p50,
            floor_available ? absl::StrFormat("%.2f", over) : "n/a", v2.CallsPerSecond(),
            v2_ratio);
        if (rest) {
          std::cout << absl::StrFormat(" %11.1f %9.3f %10.1f %9.3f %8.2f",
                                       json_load.CallsPerSecond(), json_load.Percentile(0.5),
                                       binary_load.CallsPerSecond(), binary_load.Percentile(0.5),
                                       binary_over_predict);
        }
        std::cout << "\n";
      }
      std::cout << std::flush;
    }
  }
  return kExitOk;
}

}  // namespace bnserve
