// bnctl export / import: a model version as a binary ModelVersion file, or
// exported as an ONNX model.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {

int RunExport(const CommandArgs& args, GlobalOptions globals) {
  ArgParser parser(
      "bnctl export NAME [--version N | --alias A] [--format bnserve|onnx] [--fold-batchnorm] "
      "--out FILE");
  ModelSelectorFlags selector;
  std::string out;
  std::string format = "bnserve";
  bool fold = false;
  AddModelSelectorFlags(&parser, &selector);
  parser.AddString("format", &format,
                   "bnserve (a binary ModelVersion for import, default) or onnx (an ONNX model, "
                   "IR 8 / opset 17)");
  parser.AddBool("fold-batchnorm", &fold,
                 "export the network with each BatchNorm folded into the Affine before it (the "
                 "network that serves INFERENCE)");
  parser.AddString("out", &out, "file to write to (required)");
  std::vector<std::string> positional;
  if (auto exit = ParseCommand(&parser, args, &globals, &positional, 1, 1)) return *exit;
  if (out.empty()) {
    return ReportUsageError(absl::InvalidArgumentError("--out is required"), parser);
  }
  v1::ExportModelRequest request;
  format = absl::AsciiStrToLower(format);
  if (format == "bnserve") {
    request.set_format(v1::ExportModelRequest::BNSERVE);
  } else if (format == "onnx") {
    request.set_format(v1::ExportModelRequest::ONNX);
  } else {
    return ReportUsageError(
        absl::InvalidArgumentError(absl::StrCat("--format must be bnserve or onnx, got \"",
                                                format, "\"")),
        parser);
  }
  request.set_fold_batchnorm(fold);
  absl::StatusOr<v1::ModelRef> ref = BuildModelRef(positional[0], selector);
  if (!ref.ok()) return ReportUsageError(ref.status(), parser);
  *request.mutable_model() = *ref;
  ClientConnection connection(globals);
  v1::ModelVersion version;
  grpc::Status status =
      connection.registry().ExportModel(connection.NewContext().get(), request, &version);
  if (!status.ok()) return ReportError(FromGrpcStatus(status));
  const bool onnx = request.format() == v1::ExportModelRequest::ONNX;
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  const bool written = onnx ? static_cast<bool>(file << version.onnx_model())
                            : version.SerializeToOstream(&file);
  if (!file || !written || !file.flush()) {
    return ReportError(absl::PermissionDeniedError(absl::StrCat("cannot write ", out)));
  }
  if (globals.json) {
    v1::ModelVersion summary = version;
    summary.clear_tensors();
    summary.clear_onnx_model();
    std::cout << ToJson(summary) << std::endl;
  } else if (onnx) {
    std::cout << "exported " << version.model_name() << " version " << version.version()
              << " as ONNX" << (fold ? " (BatchNorm folded)" : "") << " ("
              << version.onnx_model().size() << " bytes) to " << out << std::endl;
  } else {
    std::cout << "exported " << version.model_name() << " version " << version.version()
              << (fold ? " (BatchNorm folded)" : "") << " (" << version.tensors_size()
              << " tensors, " << version.ByteSizeLong() << " bytes) to " << out << std::endl;
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
