// bnctl: the command-line client of bnserve. `bnctl help` lists the subcommands.
#include <iostream>
#include <string>
#include <vector>

#include "client/arg_parser.h"
#include "client/client_connection.h"
#include "client/commands.h"

namespace bnserve {
namespace {

constexpr char kHelp[] = R"(bnctl: the command-line client of bnserve.

usage: bnctl [--server host:port] [--json] [--timeout 30s] COMMAND [args] [flags]

commands:
  train [flags] [--follow]             submit a training job (every hyperparameter a flag)
  jobs list [--model M] [--state S]    list jobs, newest first
  jobs get ID | watch ID | cancel ID   inspect, follow or cancel one job
  models list                          every model with its versions and aliases
  models get NAME [--version N|--alias A] [--params]
  models delete NAME --version N
  models alias set NAME ALIAS --version N
  models alias delete NAME ALIAS
  predict --model NAME (--dataset D [--split S] | --idx-images F [--idx-labels F]) [--limit N]
                                       read data locally, send it, print predictions
  evaluate --model NAME --dataset D [--split test] [--limit N]
                                       loss, accuracy, per-class accuracy, confusion matrix
  inspect (--model NAME | --untrained [--hidden ...] [--weight-std S] [--no-batchnorm])
          [--random-rows N | --data D:SPLIT:LIMIT] [--bn-mode M] [--bins 30] [--range A,B]
                                       per hidden layer histograms of Affine/BatchNorm/activation
  export NAME [--version N] --out FILE save a model version (binary ModelVersion proto)
         [--format onnx] [--fold-batchnorm]  or as an ONNX model, BatchNorm folded or not
  import FILE [--as NAME]              store an exported version as a new version
  health [--ready]                     grpc.health.v1 check (or readiness): SERVING/READY, exit 0
  experiment batchnorm                 the book's BatchNorm on/off comparison as two jobs
  experiment sweep [--scales 16]       the book's figure 6-18: weight scales x BatchNorm on/off
                                       as one sweep, watched, printed as a table (exit 3 if a
                                       point did not succeed, e.g. a diverged network)
  sweeps list | get ID | watch ID | cancel ID
                                       inspect, follow or cancel training sweeps
  bench predict                        Predict latency/throughput next to the gRPC floor
  help                                 this text; COMMAND --help for its flags

global flags:
  --server host:port   default $BNSERVE_SERVER, else 127.0.0.1:50051
  --json               print responses as protobuf JSON (one object per line)
  --timeout DURATION   deadline of each call (5s, 250ms; default 30s; streams: none)
  --token TOKEN        bearer token of every call (default $BNSERVE_TOKEN)
  --tls-ca FILE        connect with TLS, trusting this PEM CA for the server
  --tls-cert FILE      client certificate for mutual TLS (with --tls-key FILE)

exit codes: 0 ok, 1 a call failed (CODE: message on stderr), 2 bad command line,
            3 a followed job FAILED or was CANCELLED, 4 server not SERVING.
)";

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  GlobalOptions globals = GlobalOptions::Defaults();
  ArgParser parser("bnctl [global flags] COMMAND ...");
  AddGlobalFlags(&parser, &globals);
  absl::StatusOr<std::vector<std::string>> rest = parser.ParseLeading(args);
  if (!rest.ok()) return ReportUsageError(rest.status(), parser);
  globals.timeout_given = parser.IsSet("timeout");
  if (rest->empty() || (*rest)[0] == "help" || (globals.help && rest->empty())) {
    std::cout << kHelp;
    return rest->empty() && !globals.help ? kExitUsage : kExitOk;
  }
  const std::string command = (*rest)[0];
  const CommandArgs command_args(rest->begin() + 1, rest->end());
  if (command == "train") return RunTrain(command_args, globals);
  if (command == "jobs") return RunJobs(command_args, globals);
  if (command == "models") return RunModels(command_args, globals);
  if (command == "predict") return RunPredict(command_args, globals);
  if (command == "evaluate") return RunEvaluate(command_args, globals);
  if (command == "inspect") return RunInspect(command_args, globals);
  if (command == "export") return RunExport(command_args, globals);
  if (command == "import") return RunImport(command_args, globals);
  if (command == "health") return RunHealth(command_args, globals);
  if (command == "experiment") return RunExperiment(command_args, globals);
  if (command == "sweeps") return RunSweeps(command_args, globals);
  if (command == "bench") return RunBench(command_args, globals);
  std::cerr << "bnctl: unknown command '" << command << "'\n\n" << kHelp;
  return kExitUsage;
}

}  // namespace
}  // namespace bnserve

int main(int argc, char** argv) { return bnserve::Main(argc, argv); }
