// The subcommands of bnctl, each a function from its arguments (after the
// subcommand's name) and the global options to a process exit code, and the
// helpers they share. Each prints its own output and errors.
#ifndef BNSERVE_CLIENT_COMMANDS_H_
#define BNSERVE_CLIENT_COMMANDS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bnserve/v1/training_service.pb.h"
#include "bnserve/v1/types.pb.h"
#include "client/arg_parser.h"
#include "client/client_connection.h"

namespace bnserve {

using CommandArgs = std::vector<std::string>;

int RunTrain(const CommandArgs& args, GlobalOptions globals);
int RunJobs(const CommandArgs& args, GlobalOptions globals);      // list|get|watch|cancel
int RunModels(const CommandArgs& args, GlobalOptions globals);    // list|get|delete|alias
int RunPredict(const CommandArgs& args, GlobalOptions globals);
int RunEvaluate(const CommandArgs& args, GlobalOptions globals);
int RunInspect(const CommandArgs& args, GlobalOptions globals);   // layer histograms
int RunExport(const CommandArgs& args, GlobalOptions globals);
int RunImport(const CommandArgs& args, GlobalOptions globals);
int RunHealth(const CommandArgs& args, GlobalOptions globals);
int RunExperiment(const CommandArgs& args, GlobalOptions globals);  // batchnorm|sweep
int RunSweeps(const CommandArgs& args, GlobalOptions globals);      // list|get|watch|cancel
int RunBench(const CommandArgs& args, GlobalOptions globals);       // predict

// Adds the global flags to `parser`, parses `args` into `positional`, and
// checks their count is within [min_positional, max_positional]. Returns an
// exit code when the command should stop here (--help: kExitOk after printing
// the help; a bad command line: kExitUsage after printing the error), else
// nullopt.
std::optional<int> ParseCommand(ArgParser* parser, const CommandArgs& args,
                                GlobalOptions* globals, std::vector<std::string>* positional,
                                size_t min_positional, size_t max_positional);

// --version N / --alias A selecting a model version.
struct ModelSelectorFlags {
  int version = 0;
  std::string alias;
};
void AddModelSelectorFlags(ArgParser* parser, ModelSelectorFlags* flags);
// The reference to `name` at the selected version (latest when neither is
// given). InvalidArgument when both are given or the name is empty.
absl::StatusOr<v1::ModelRef> BuildModelRef(const std::string& name,
                                           const ModelSelectorFlags& flags);

// Streams a job's events until its terminal event and returns the job in its
// final state. With `print`, prints one line per epoch (and the state
// changes); on a terminal, also a live progress bar redrawn in place. With
// --json, prints each event as one JSON line instead.
absl::StatusOr<v1::Job> WatchJobToEnd(ClientConnection* connection,
                                      const GlobalOptions& globals,
                                      const std::string& job_id, bool print);

// kExitOk for SUCCEEDED, kExitJobUnsuccessful for any other state.
int ExitCodeForJob(const v1::Job& job);

// One line: the final state, reason and registered version of a finished job.
std::string FormatJobOutcome(const v1::Job& job);

// Streams a sweep's events until its last one and returns the sweep in its
// final state. With `print`, prints one line per point as its job ends (with
// --json, each event as one JSON line instead).
absl::StatusOr<v1::Sweep> WatchSweepToEnd(ClientConnection* connection,
                                          const GlobalOptions& globals,
                                          const std::string& sweep_id, bool print);

// kExitOk when every point SUCCEEDED, kExitJobUnsuccessful otherwise.
int ExitCodeForSweep(const v1::Sweep& sweep);

// The sweep's header line and one line per point (values, state, job,
// final training accuracy, version, reason).
std::string FormatSweepDetails(const v1::Sweep& sweep);

// The book's figure 6-18 as a table: one row per weight std (in grid
// order), the final training accuracy with BatchNorm and without ("n/a"
// where the grid has no such point; the state after it when a point did
// not succeed).
std::string FormatSweepBatchNormTable(const v1::Sweep& sweep);

}  // namespace bnserve

#endif  // BNSERVE_CLIENT_COMMANDS_H_
