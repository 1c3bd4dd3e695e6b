// FindDataDir: where bnctl reads the built-in data sets on this machine
// (`predict --dataset` and `bench predict` read them locally), found the way
// a user expects wherever bnctl is run from:
//
//   1. --data-dir DIR, when given;
//   2. else $BNSERVE_DATA_DIR, when set and not empty;
//   3. else the first of these that is a directory:
//        <bnctl's dir>/../../var/data       bnctl in the build tree of a checkout
//                                           (build/client/bnctl)
//        <bnctl's dir>/../share/bnserve/data  bnctl installed under a prefix
//                                           (PREFIX/bin/bnctl)
//        /usr/share/bnserve/data            the container image (docker/Dockerfile)
//        var/data under the current directory
//      and when none is, the first of them (the one setup would fill).
//
// bnctl's own path comes from /proc/self/exe. A flag or variable is taken as
// given, even when it names no directory: the read then fails and names it.
//
// Thread-safety: every function here is a function of its arguments and the
// file system; thread-safe.
#ifndef BNSERVE_CLIENT_DATA_DIR_H_
#define BNSERVE_CLIENT_DATA_DIR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace bnserve {

// The help text of bnctl's --data-dir flag.
inline constexpr char kDataDirFlagHelp[] =
    "local data directory (default: $BNSERVE_DATA_DIR, else var/data of the checkout or "
    "installation bnctl runs from, else ./var/data)";

// Where the container image keeps the data sets (docker/Dockerfile).
inline constexpr char kInstalledDataDir[] = "/usr/share/bnserve/data";

// What the lookup starts from.
struct DataDirSources {
  std::string flag;          // --data-dir; empty when not given
  std::string env;           // $BNSERVE_DATA_DIR; empty when unset
  std::string executable;    // bnctl's absolute path; empty when unknown
  std::string working_dir;   // the current directory (absolute)
  std::string installed_dir = kInstalledDataDir;
};

struct DataDirChoice {
  // The directory to read the data sets from.
  std::string path;
  // How it was chosen, for messages: "--data-dir", "$BNSERVE_DATA_DIR",
  // "the search".
  std::string origin;
  // Every directory the search looked at, in order (empty unless the search
  // chose).
  std::vector<std::string> searched;
};

// The data directory of the rules above.
DataDirChoice FindDataDir(const DataDirSources& sources);

// The sources of this process: `flag`, $BNSERVE_DATA_DIR, /proc/self/exe and
// the current directory.
DataDirSources ThisProcessDataDirSources(const std::string& flag);

// `status` unchanged unless it is NotFound (data set files missing, see
// LoadBuiltinDataset, whose message already says to run scripts/setup.sh);
// then NotFound with that message followed by which data directory bnctl
// read and how it chose it (or every directory it looked in), and that
// --data-dir or BNSERVE_DATA_DIR can point elsewhere.
absl::Status ExplainDataDir(const absl::Status& status, const DataDirChoice& choice);

}  // namespace bnserve

#endif  // BNSERVE_CLIENT_DATA_DIR_H_
