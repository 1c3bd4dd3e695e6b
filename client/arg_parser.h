// ArgParser: the flags of one bnctl subcommand, parsed from argv by hand.
//
//   ArgParser parser("bnctl jobs list [flags]");
//   parser.AddString("model", &model, "only this model's jobs");
//   parser.AddBool("follow", &follow, "watch the job until it ends");
//   ASSIGN_OR_RETURN(std::vector<std::string> positional, parser.Parse(args));
//
// Accepted spellings: --name value, --name=value; a bool flag is --name,
// --no-name or --name=true|false. Flags may stand before, between or after
// positional arguments; "--" ends the flags. Every registered target keeps its
// initial value unless its flag is given. Not thread-safe; a plain helper.
#ifndef BNSERVE_CLIENT_ARG_PARSER_H_
#define BNSERVE_CLIENT_ARG_PARSER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bnserve {

class ArgParser {
 public:
  // `usage` is the first line of Help(), e.g. "bnctl jobs get ID".
  explicit ArgParser(std::string usage);

  void AddString(const std::string& name, std::string* value, const std::string& help);
  void AddInt(const std::string& name, int* value, const std::string& help);
  void AddDouble(const std::string& name, double* value, const std::string& help);
  void AddBool(const std::string& name, bool* value, const std::string& help);
  // "5s", "250ms", "1m" (absl::ParseDuration) or a plain number of seconds.
  void AddDuration(const std::string& name, absl::Duration* value,
                   const std::string& help);
  // A comma-separated list of positive integers, e.g. "100,100,100".
  void AddIntList(const std::string& name, std::vector<int>* value,
                  const std::string& help);

  // Parses `args` (without the program and subcommand names) and returns the
  // positional arguments in order. InvalidArgument for an unknown flag, a
  // missing or unparsable value; targets parsed before the error keep their
  // new values.
  absl::StatusOr<std::vector<std::string>> Parse(const std::vector<std::string>& args);

  // Like Parse, but stops at the first positional argument and returns it with
  // everything after it unparsed (for the global flags before a subcommand).
  absl::StatusOr<std::vector<std::string>> ParseLeading(
      const std::vector<std::string>& args);

  // True if the flag (by name, without dashes) was given in a Parse call.
  bool IsSet(absl::string_view name) const;

  // The usage line and one line per flag.
  std::string Help() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string value_hint;  // empty for a bool flag
    std::function<absl::Status(absl::string_view)> set;
    bool is_set = false;
  };

  void Add(Flag flag);
  Flag* Find(absl::string_view name);
  // Consumes the flag at args[*i] (and its value); advances *i past it.
  absl::Status ParseFlag(const std::vector<std::string>& args, size_t* i);

  std::string usage_;
  std::vector<Flag> flags_;
};

// Parses "100,100,100" into {100, 100, 100}; InvalidArgument unless every
// element is a positive integer.
absl::StatusOr<std::vector<int>> ParsePositiveIntList(absl::string_view text);

}  // namespace bnserve

#endif  // BNSERVE_CLIENT_ARG_PARSER_H_
