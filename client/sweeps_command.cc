// bnctl sweeps list|get|watch|cancel, and what `experiment sweep` shares with
// them: the sweep watcher (one line per finished point) and the tables.
#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

// The last epoch's training accuracy, with the state when the point did not
// succeed: "0.9340", "0.1120 CANCELLED", "- QUEUED".
std::string PointAccuracy(const v1::SweepPoint& point) {
  std::string text = point.epochs().empty()
                         ? "-"
                         : absl::StrFormat("%.4f", point.epochs().rbegin()->train_accuracy());
  if (point.state() != v1::SUCCEEDED) absl::StrAppend(&text, " ", JobStateName(point.state()));
  return text;
}

std::string FormatPointLine(const v1::Sweep& sweep, int index) {
  const v1::SweepPoint& point = sweep.points(index);
  std::string line =
      absl::StrFormat("point %d/%d  std %-10g bn %-3s lr %-8g %-9s %s", index, sweep.points_size(),
                      point.weight_init_std(), point.use_batchnorm() ? "on" : "off",
                      point.learning_rate(), JobStateName(point.state()), point.job_id());
  if (!point.epochs().empty()) {
    absl::StrAppendFormat(&line, "  train acc %.4f", point.epochs().rbegin()->train_accuracy());
  }
  if (point.model_version() > 0) absl::StrAppend(&line, "  version ", point.model_version());
  if (!point.reason().empty()) absl::StrAppend(&line, "  (", point.reason(), ")");
  return line;
}

// sweeps list.
int RunSweepsList(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl sweeps list [--limit N]");
  int limit = 50;
  parser.AddInt("limit", &limit, "at most this many sweeps (default 50)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  ClientConnection connection(globals);
  v1::ListSweepsRequest request;
  v1::ListSweepsResponse all;
  do {
    request.set_page_size(std::min(limit - all.sweeps_size(), 1000));
    v1::ListSweepsResponse page;
    grpc::Status status =
        connection.training().ListSweeps(connection.NewContext().get(), request, &page);
    if (!status.ok()) return ReportError(FromGrpcStatus(status));
    for (v1::Sweep& sweep : *page.mutable_sweeps()) *all.add_sweeps() = std::move(sweep);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty() && all.sweeps_size() < limit);
  if (globals.json) {
    std::cout << ToJson(all) << std::endl;
    return kExitOk;
  }
  if (all.sweeps().empty()) std::cout << "no sweeps\n";
  for (const v1::Sweep& sweep : all.sweeps()) {
    std::cout << absl::StrFormat(
        "%s  %d/%d points finished  %s  %s  %s\n", sweep.sweep_id(), sweep.finished_points(),
        sweep.points_size(), sweep.request().base().model_name(),
        FormatTimestamp(sweep.created_at()), sweep.request().description());
  }
  return kExitOk;
}

// sweeps get|watch|cancel ID.
int RunSweepsOne(const std::string& verb, const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(absl::StrCat("bnctl sweeps ", verb, " SWEEP_ID"));
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  ClientConnection connection(globals);
  const std::string& sweep_id = positional[0];
  v1::Sweep sweep;
  if (verb == "watch") {
    absl::StatusOr<v1::Sweep> watched = WatchSweepToEnd(&connection, globals, sweep_id, true);
    if (!watched.ok()) return ReportError(watched.status());
    sweep = *std::move(watched);
  } else {
    grpc::Status status;
    if (verb == "get") {
      v1::GetSweepRequest request;
      request.set_sweep_id(sweep_id);
      status = connection.training().GetSweep(connection.NewContext().get(), request, &sweep);
    } else {
      v1::CancelSweepRequest request;
      request.set_sweep_id(sweep_id);
      status = connection.training().CancelSweep(connection.NewContext().get(), request, &sweep);
    }
    if (!status.ok()) return ReportError(FromGrpcStatus(status));
  }
  if (globals.json) {
    std::cout << ToJson(sweep) << std::endl;
  } else {
    if (verb == "cancel") std::cout << "cancel requested: ";
    std::cout << FormatSweepDetails(sweep);
  }
  return verb == "watch" ? ExitCodeForSweep(sweep) : kExitOk;
}

}  // namespace

std::string FormatSweepDetails(const v1::Sweep& sweep) {
  std::string text = absl::StrFormat(
      "%s  model %s  %d/%d points finished  created %s by %s\n", sweep.sweep_id(),
      sweep.request().base().model_name(), sweep.finished_points(), sweep.points_size(),
      FormatTimestamp(sweep.created_at()), sweep.created_by().empty() ? "-" : sweep.created_by());
  if (!sweep.request().description().empty()) {
    absl::StrAppend(&text, "  ", sweep.request().description(), "\n");
  }
  for (int i = 0; i < sweep.points_size(); ++i) {
    absl::StrAppend(&text, "  ", FormatPointLine(sweep, i), "\n");
  }
  return text;
}

std::string FormatSweepBatchNormTable(const v1::Sweep& sweep) {
  // Rows in the grid's order of weight stds; per row the BN and plain points.
  std::vector<double> stds;
  std::map<double, const v1::SweepPoint*> with_bn, without_bn;
  for (const v1::SweepPoint& point : sweep.points()) {
    if (std::find(stds.begin(), stds.end(), point.weight_init_std()) == stds.end()) {
      stds.push_back(point.weight_init_std());
    }
    (point.use_batchnorm() ? with_bn : without_bn)[point.weight_init_std()] = &point;
  }
  std::string text =
      absl::StrFormat("%12s  %18s  %18s\n", "weight std", "batchnorm acc", "plain acc");
  for (double s : stds) {
    auto cell = [s](const std::map<double, const v1::SweepPoint*>& column) {
      auto it = column.find(s);
      return it == column.end() ? std::string("n/a") : PointAccuracy(*it->second);
    };
    absl::StrAppendFormat(&text, "%12.6g  %18s  %18s\n", s, cell(with_bn), cell(without_bn));
  }
  return text;
}

int ExitCodeForSweep(const v1::Sweep& sweep) {
  for (const v1::SweepPoint& point : sweep.points()) {
    if (point.state() != v1::SUCCEEDED) return kExitJobUnsuccessful;
  }
  return kExitOk;
}

absl::StatusOr<v1::Sweep> WatchSweepToEnd(ClientConnection* connection,
                                          const GlobalOptions& globals, const std::string& sweep_id,
                                          bool print) {
  // The sweep first, for its points' values (and a quick NOT_FOUND).
  v1::GetSweepRequest get;
  get.set_sweep_id(sweep_id);
  v1::Sweep sweep;
  grpc::Status status =
      connection->training().GetSweep(connection->NewContext().get(), get, &sweep);
  if (!status.ok()) return FromGrpcStatus(status);

  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  std::unique_ptr<grpc::ClientContext> context = connection->NewContext(/*streaming=*/true);
  std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
      connection->training().WatchSweep(context.get(), request);
  v1::SweepEvent event;
  bool finished = false;
  int ended = 0;
  while (reader->Read(&event)) {
    if (print && globals.json) std::cout << ToJson(event) << std::endl;
    if (event.has_finished()) {
      sweep = event.finished();
      finished = true;
    } else if (event.job_event().has_finished() && event.point() >= 0 &&
               event.point() < sweep.points_size()) {
      const v1::Job& job = event.job_event().finished();
      v1::SweepPoint* point = sweep.mutable_points(event.point());
      point->set_state(job.state());
      *point->mutable_epochs() = job.epochs();
      point->set_model_version(job.model_version());
      point->set_reason(job.reason());
      ++ended;
      if (print && !globals.json) {
        std::cout << "[" << ended << "/" << sweep.points_size() << "] "
                  << FormatPointLine(sweep, event.point()) << std::endl;
      }
    }
  }
  status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!finished) {
    return absl::UnavailableError(
        absl::StrCat("the watch stream of ", sweep_id, " ended before the sweep did"));
  }
  return sweep;
}

int RunSweeps(const CommandArgs& args, GlobalOptions globals) {
  const std::string verb = args.empty() ? "" : args[0];
  const CommandArgs rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (verb == "list") return RunSweepsList(rest, globals);
  if (verb == "get" || verb == "watch" || verb == "cancel") {
    return RunSweepsOne(verb, rest, globals);
  }
  std::cerr << "usage: bnctl sweeps list [--limit N] | get ID | watch ID | cancel ID\n";
  return (verb == "--help" || verb == "help") ? kExitOk : kExitUsage;
}

}  // namespace bnserve
