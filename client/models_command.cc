// bnctl models list|get|delete|alias: the model registry.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {
namespace {

int RunModelsList(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl models list");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 0, 0)) return *exit;
  ClientConnection connection(globals);
  v1::ListModelsResponse response;
  grpc::Status status = connection.registry().ListModels(connection.NewContext().get(),
                                                         v1::ListModelsRequest(), &response);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(response) << std::endl;
    return kExitOk;
  }
  if (response.models().empty()) std::cout << "no models\n";
  for (const v1::Model& model : response.models()) {
    std::vector<std::string> aliases;
    for (const auto& [alias, version] : model.aliases()) {
      aliases.push_back(absl::StrCat(alias, "->", version));
    }
    std::sort(aliases.begin(), aliases.end());
    std::cout << absl::StrFormat("%-24s latest %-4d versions [%s]", model.name(),
                                 model.latest_version(), absl::StrJoin(model.versions(), ","));
    if (!aliases.empty()) std::cout << "  aliases " << absl::StrJoin(aliases, " ");
    std::cout << "\n";
  }
  return kExitOk;
}

int RunModelsGet(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl models get NAME [--version N | --alias A] [--params]");
  ModelSelectorFlags selector;
  bool params = false;
  AddModelSelectorFlags(&parser, &selector);
  parser.AddBool("params", &params, "include every tensor");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  absl::StatusOr<v1::ModelRef> ref = BuildModelRef(positional[0], selector);
  if (!ref.ok()) return ReportUsageError(ref.status(), parser);
  ClientConnection connection(globals);
  v1::GetModelRequest request;
  *request.mutable_model() = *ref;
  request.set_include_parameters(params);
  v1::ModelVersion version;
  grpc::Status status =
      connection.registry().GetModel(connection.NewContext().get(), request, &version);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(version) << std::endl;
    return kExitOk;
  }
  std::cout << FormatModelVersion(version);
  if (params) {
    std::cout << "tensors:\n";
    for (const v1::NamedTensor& tensor : version.tensors()) {
      double sum_squares = 0;
      for (float value : tensor.tensor().values()) sum_squares += double{value} * value;
      std::cout << absl::StrFormat("  %-16s %-10s rms %.6f\n", tensor.name(),
                                   absl::StrJoin(tensor.tensor().shape(), "x"),
                                   tensor.tensor().values().empty()
                                       ? 0.0
                                       : std::sqrt(sum_squares / tensor.tensor().values_size()));
    }
  }
  return kExitOk;
}

int RunModelsDelete(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl models delete NAME --version N");
  int version = 0;
  parser.AddInt("version", &version, "the version to delete (required)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  if (version <= 0) {
    return ReportUsageError(absl::InvalidArgumentError("--version is required"), parser);
  }
  ClientConnection connection(globals);
  v1::DeleteModelVersionRequest request;
  request.set_model_name(positional[0]);
  request.set_version(version);
  google::protobuf::Empty empty;
  grpc::Status status = connection.registry().DeleteModelVersion(
      connection.NewContext().get(), request, &empty);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    std::cout << ToJson(empty) << std::endl;
  } else {
    std::cout << "deleted " << positional[0] << " version " << version << std::endl;
  }
  return kExitOk;
}

int RunModelsAlias(const CommandArgs& args, GlobalOptions globals) {
  const std::string verb = args.empty() ? "" : args[0];
  const CommandArgs rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (verb == "set") {
    ArgParser parser("bnctl models alias set NAME ALIAS --version N");
    int version = 0;
    parser.AddInt("version", &version, "the version the alias points at (required)");
    std::vector<std::string> positional;
    if (auto exit = ParseCommand(&parser, rest, &globals, &positional, 2, 2)) return *exit;
    if (version <= 0) {
      return ReportUsageError(absl::InvalidArgumentError("--version is required"), parser);
    }
    ClientConnection connection(globals);
    v1::SetAliasRequest request;
    request.set_model_name(positional[0]);
    request.set_alias(positional[1]);
    request.set_version(version);
    v1::Model model;
    grpc::Status status =
        connection.registry().SetAlias(connection.NewContext().get(), request, &model);
    if (!status.ok()) return ReportError(FromGrpcStatus(status));
    if (globals.json) {
      std::cout << ToJson(model) << std::endl;
    } else {
      std::cout << positional[0] << ":" << positional[1] << " -> version " << version
                << std::endl;
    }
    return kExitOk;
  }
  if (verb == "delete") {
    ArgParser parser("bnctl models alias delete NAME ALIAS");
    std::vector<std::string> positional;
    if (auto exit = ParseCommand(&parser, rest, &globals, &positional, 2, 2)) return *exit;
    ClientConnection owned(globals);
    v1::DeleteAliasRequest request;
    request.set_model_name(positional[0]);
    request.set_alias(positional[1]);
    google::protobuf::Empty empty;
    grpc::Status status =
        owned.registry().DeleteAlias(owned.NewContext().get(), request, &empty);
    if (!status.ok()) return ReportError(FromGrpcStatus(status));
    if (globals.json) {
      std::cout << ToJson(empty) << std::endl;
    } else {
      std::cout << "deleted alias " << positional[0] << ":" << positional[1] << std::endl;
    }
    return kExitOk;
  }
  std::cerr << "usage: bnctl models alias set NAME ALIAS --version N | delete NAME ALIAS\n";
  return kExitUsage;
}

}  // namespace

int RunModels(const CommandArgs& args, GlobalOptions globals) {
  const std::string verb = args.empty() ? "" : args[0];
  const CommandArgs rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (verb == "list") return RunModelsList(rest, globals);
  if (verb == "get") return RunModelsGet(rest, globals);
  if (verb == "delete") return RunModelsDelete(rest, globals);
  if (verb == "alias") return RunModelsAlias(rest, globals);
  std::cerr << "usage: bnctl models list | get NAME [--version N|--alias A] [--params] |\n"
               "       delete NAME --version N | alias set NAME ALIAS --version N |\n"
               "       alias delete NAME ALIAS\n";
  return (verb == "--help" || verb == "help") ? kExitOk : kExitUsage;
}

}  // namespace bnserve
