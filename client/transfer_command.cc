// bnctl export / import: a model version as a binary ModelVersion file.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {

int RunExport(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl export NAME [--version N | --alias A] --out FILE");
  ModelSelectorFlags selector;
  std::string out;
  AddModelSelectorFlags(&parser, &selector);
  parser.AddString("out", &out, "file to write the ModelVersion to (required)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  if (out.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("--out is required"), parser);
  }
  absl::StatusOr<v1::ModelRef> ref = BuildModelRef(positional[0], selector);
  if (!ref.ok()) return ReportUsageError(ref.status(), parser);
  ClientConnection connection(globals);
  v1::ExportModelRequest request;
  *request.mutable_model() = *ref;
  v1::ModelVersion version;
  grpc::Status status =
      connection.registry().ExportModel(connection.NewContext().get(), request, &version);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  if (!file || !version.SerializeToOstream(&file) || !file.flush()) {
    return ReportError(absl::PermissionDeniedError(absl::StrCat("cannot write ", out)));
  }
  if (globals.json) {
    v1::ModelVersion summary = version;
    summary.clear_tensors();
    std::cout << ToJson(summary) << std::endl;
  } else {
    std::cout << "exported " << version.model_name() << " version " << version.version()
              << " (" << version.tensors_size() << " tensors, " << version.ByteSizeLong()
              << " bytes) to " << out << std::endl;
  }
  return kExitOk;
}

int RunImport(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser("bnctl import FILE [--as NAME]");
  std::string as;
  parser.AddString("as", &as, "store under this model name instead of the file's");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  std::ifstream file(positional[0], std::ios::binary);
  if (!file) {
    return ReportError(absl::NotFoundError(absl::StrCat("cannot open ", positional[0])));
  }
  v1::ImportModelRequest request;
  if (!request.mutable_model()->ParseFromIstream(&file)) {
    // The server's words for the same bytes (ImportModel).
    return ReportError(absl::InvalidArgumentError(absl::StrCat(
        "not a valid exported model: ", positional[0],
        " does not parse as a bnserve.v1.ModelVersion (a truncated or damaged `bnctl export` "
        "file, or not an export at all)")));
  }
  request.set_model_name(as);
  ClientConnection connection(globals);
  v1::ModelVersion version;
  grpc::Status status =
      connection.registry().ImportModel(connection.NewContext().get(), request, &version);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  if (globals.json) {
    version.clear_tensors();
    std::cout << ToJson(version) << std::endl;
  } else {
    std::cout << "imported as " << version.model_name() << " version " << version.version()
              << std::endl;
  }
  return kExitOk;
}

}  // namespace bnserve
