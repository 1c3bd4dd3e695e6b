#include "client/arg_parser.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bnserve {

ArgParser::ArgParser(std::string usage) : usage_(std::move(usage)) {}

void ArgParser::Add(Flag flag) { flags_.push_back(std::move(flag)); }

void ArgParser::AddString(const std::string& name, std::string* value,
                          const std::string& help) {
  Add({name, help, "TEXT", [value](absl::string_view text) {
         *value = std::string(text);
         return absl::OkStatus();
       }});
}

void ArgParser::AddInt(const std::string& name, int* value, const std::string& help) {
  Add({name, help, "N", [name, value](absl::string_view text) {
         if (!absl::SimpleAtoi(text, value)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--", name, " wants an integer, got '", text, "'"));
         }
         return absl::OkStatus();
       }});
}

void ArgParser::AddDouble(const std::string& name, double* value,
                          const std::string& help) {
  Add({name, help, "X", [name, value](absl::string_view text) {
         if (!absl::SimpleAtod(text, value)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--", name, " wants a number, got '", text, "'"));
         }
         return absl::OkStatus();
       }});
}

void ArgParser::AddBool(const std::string& name, bool* value, const std::string& help) {
  Add({name, help, "", [name, value](absl::string_view text) {
         if (!absl::SimpleAtob(text, value)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--", name, " wants true or false, got '", text, "'"));
         }
         return absl::OkStatus();
       }});
}

void ArgParser::AddDuration(const std::string& name, absl::Duration* value,
                            const std::string& help) {
  Add({name, help, "DURATION", [name, value](absl::string_view text) {
         double seconds = 0;
         if (absl::SimpleAtod(text, &seconds)) {
           *value = absl::Seconds(seconds);
         } else if (!absl::ParseDuration(text, value)) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--", name, " wants a duration such as 5s or 250ms, got '", text, "'"));
         }
         if (*value < absl::ZeroDuration()) {
           return absl::InvalidArgumentError(absl::StrCat("--", name, " is negative"));
         }
         return absl::OkStatus();
       }});
}

void ArgParser::AddIntList(const std::string& name, std::vector<int>* value,
                           const std::string& help) {
  Add({name, help, "N,N,...", [name, value](absl::string_view text) {
         absl::StatusOr<std::vector<int>> list = ParsePositiveIntList(text);
         if (!list.ok()) {
           return absl::InvalidArgumentError(
               absl::StrCat("--", name, ": ", list.status().message()));
         }
         *value = *std::move(list);
         return absl::OkStatus();
       }});
}

ArgParser::Flag* ArgParser::Find(absl::string_view name) {
  for (Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

bool ArgParser::IsSet(absl::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return flag.is_set;
  }
  return false;
}

absl::Status ArgParser::ParseFlag(const std::vector<std::string>& args, size_t* i) {
  absl::string_view arg = args[*i];
  absl::string_view body = arg;
  if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
  absl::string_view name = body;
  absl::string_view inline_value;
  bool has_inline_value = false;
  if (size_t eq = body.find('='); eq != absl::string_view::npos) {
    name = body.substr(0, eq);
    inline_value = body.substr(eq + 1);
    has_inline_value = true;
  }
  ++*i;

  Flag* flag = Find(name);
  if (flag == nullptr && !has_inline_value && absl::StartsWith(name, "no-")) {
    Flag* negated = Find(name.substr(3));
    if (negated != nullptr && negated->value_hint.empty()) {
      negated->is_set = true;
      return negated->set("false");
    }
  }
  if (flag == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
  }
  flag->is_set = true;
  if (flag->value_hint.empty()) {  // bool
    return flag->set(has_inline_value ? inline_value : "true");
  }
  if (has_inline_value) return flag->set(inline_value);
  if (*i >= args.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", flag->name, " needs a value"));
  }
  return flag->set(args[(*i)++]);
}

namespace {
bool LooksLikeFlag(absl::string_view arg) {
  // "-" alone and negative numbers are values, not flags.
  if (arg.size() < 2 || arg[0] != '-') return false;
  return !(arg[1] >= '0' && arg[1] <= '9') && arg[1] != '.';
}
}  // namespace

absl::StatusOr<std::vector<std::string>> ArgParser::Parse(
    const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  size_t i = 0;
  while (i < args.size()) {
    if (args[i] == "--") {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (LooksLikeFlag(args[i])) {
      absl::Status status = ParseFlag(args, &i);
      if (!status.ok()) return status;
    } else {
      positional.push_back(args[i++]);
    }
  }
  return positional;
}

absl::StatusOr<std::vector<std::string>> ArgParser::ParseLeading(
    const std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size() && LooksLikeFlag(args[i]) && args[i] != "--") {
    absl::Status status = ParseFlag(args, &i);
    if (!status.ok()) return status;
  }
  if (i < args.size() && args[i] == "--") ++i;
  return std::vector<std::string>(args.begin() + i, args.end());
}

std::string ArgParser::Help() const {
  std::string help = absl::StrCat("usage: ", usage_, "\n");
  if (!flags_.empty()) absl::StrAppend(&help, "flags:\n");
  for (const Flag& flag : flags_) {
    std::string spelling = flag.value_hint.empty()
                               ? absl::StrCat("--[no-]", flag.name)
                               : absl::StrCat("--", flag.name, " ", flag.value_hint);
    absl::StrAppend(&help, "  ", spelling);
    if (spelling.size() < 30) help.append(30 - spelling.size(), ' ');
    absl::StrAppend(&help, " ", flag.help, "\n");
  }
  return help;
}

absl::StatusOr<std::vector<int>> ParsePositiveIntList(absl::string_view text) {
  std::vector<int> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "wants a comma-separated list of positive integers, got '", text, "'"));
    }
    values.push_back(value);
  }
  return values;
}

}  // namespace bnserve
