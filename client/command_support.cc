// The helpers of commands.h that every subcommand shares.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/proto_format.h"

namespace bnserve {

std::optional<int> ParseCommand(ArgParser* parser, const CommandArgs& args,
                                GlobalOptions* globals, std::vector<std::string>* positional,
                                size_t min_positional, size_t max_positional) {
  AddGlobalFlags(parser, globals);
  absl::StatusOr<std::vector<std::string>> parsed = parser->Parse(args);
  if (!parsed.ok()) return ReportUsageError(parsed.status(), *parser);
  if (globals->help) {
    std::cout << parser->Help();
    return kExitOk;
  }
  globals->timeout_given = globals->timeout_given || parser->IsSet("timeout");
  if (absl::Status tls = LoadTlsFiles(globals); !tls.ok()) return ReportUsageError(tls, *parser);
  if (absl::StatusOr<std::string> target = GrpcTarget(globals->server); !target.ok()) {
    return ReportUsageError(target.status(), *parser);
  }
  if (parsed->size() < min_positional || parsed->size() > max_positional) {
    return ReportUsageError(
        absl::InvalidArgumentError(absl::StrCat("wrong number of arguments (", parsed->size(),
                                                ")")),
        *parser);
  }
  *positional = *std::move(parsed);
  return std::nullopt;
}

void AddModelSelectorFlags(ArgParser* parser, ModelSelectorFlags* flags) {
  parser->AddInt("version", &flags->version, "model version (default: latest)");
  parser->AddString("alias", &flags->alias, "model alias, e.g. production");
}

absl::StatusOr<v1::ModelRef> BuildModelRef(const std::string& name,
                                           const ModelSelectorFlags& flags) {
  if (name.empty()) return absl::InvalidArgumentError("a model name is required");
  if (flags.version != 0 && !flags.alias.empty()) {
    return absl::InvalidArgumentError("give --version or --alias, not both");
  }
  v1::ModelRef ref;
  ref.set_name(name);
  if (flags.version != 0) ref.set_version(flags.version);
  if (!flags.alias.empty()) ref.set_alias(flags.alias);
  return ref;
}

int ExitCodeForJob(const v1::Job& job) {
  return job.state() == v1::SUCCEEDED ? kExitOk : kExitJobUnsuccessful;
}

std::string FormatJobOutcome(const v1::Job& job) {
  std::string text = absl::StrCat(job.job_id(), " ", JobStateName(job.state()));
  if (job.state() == v1::SUCCEEDED) {
    absl::StrAppend(&text, ": model ", job.model_name(), " version ", job.model_version());
  }
  if (!job.reason().empty()) absl::StrAppend(&text, ": ", job.reason());
  return text;
}

}  // namespace bnserve
