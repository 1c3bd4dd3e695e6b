// SqliteStatement: a prepared SQLite statement in use — bind its parameters,
// step through its rows, read their columns — and the few functions a store
// needs around it: the status of a failed call, exec, and a transaction.
// Errors are absl::Status, mapped the same way for a statement, an exec, a
// BEGIN and a COMMIT (SqliteStatusFromCode): busy/locked: Unavailable
// "registry busy", full: ResourceExhausted "registry disk full", I/O error:
// Unavailable "registry I/O error" (the storage failed; the same call may
// succeed later), corrupt: DataLoss, anything else: Internal.
//
//   SqliteStatement select(db, stmt);  // stmt prepared once and cached
//   select.Bind(1, model_name);
//   RETURN_IF_ERROR(select.ForEachRow([&] {
//     versions.push_back(static_cast<int>(select.Int(0)));
//     return absl::OkStatus();
//   }));
//
// Thread-safety: thread-compatible. A connection and its statements must be
// used by one thread at a time (SqliteModelStore serializes them).
#ifndef BNSERVE_SERVER_SQLITE_STATEMENT_H_
#define BNSERVE_SERVER_SQLITE_STATEMENT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace bnserve {

class SqliteStatement {
 public:
  // Uses `stmt`, prepared on `db` and owned by the caller (which caches and
  // finalizes it). When this goes out of scope the statement is reset and
  // its bindings cleared, ready for its next use.
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStatement();
  SqliteStatement(SqliteStatement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Parameters are 1-based. Text and blobs are copied.
  SqliteStatement& Bind(int index, const std::string& text);
  SqliteStatement& Bind(int index, int64_t value);
  // A zero-length blob is bound as a blob, not NULL.
  SqliteStatement& BindBlob(int index, const void* data, size_t size);

  // Steps once: true for a row, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows.
  absl::Status Run();
  // Steps to the end, calling `on_row` (which reads the columns) for each
  // row; stops at the first error, of SQLite or of `on_row`.
  absl::Status ForEachRow(const std::function<absl::Status()>& on_row);

  // Columns of the current row, 0-based.
  bool IsNull(int column) const;
  int64_t Int(int column) const;
  std::string Text(int column) const;
  // The blob's bytes (valid until the next Step or destruction).
  std::pair<const void*, size_t> Blob(int column) const;
  // Parses a blob column into a protobuf message. DataLoss if it does not parse.
  template <typename Message>
  absl::Status Parse(int column, Message* message) const {
    auto [data, size] = Blob(column);
    if (!message->ParseFromArray(data, static_cast<int>(size))) {
      return absl::DataLossError(
          absl::StrCat("cannot parse a stored ", message->GetTypeName(), " (", size, " bytes)"));
    }
    return absl::OkStatus();
  }
  // Steps to the end, parsing `column` of every row (as Parse).
  template <typename Message>
  absl::StatusOr<std::vector<Message>> ParseEachRow(int column) {
    std::vector<Message> messages;
    absl::Status status = ForEachRow([&] {
      messages.emplace_back();
      return Parse(column, &messages.back());
    });
    if (!status.ok()) return status;
    return messages;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;  // null once moved from
};

// The status for SQLite result code `code` (primary or extended) of a call
// that ran `what` (the SQL or what was being done), as described above;
// `detail` is SQLite's message.
absl::Status SqliteStatusFromCode(int code, absl::string_view what, absl::string_view detail);

// The status of the last failed call on `db` while running `what`.
absl::Status SqliteError(sqlite3* db, absl::string_view what);

// Runs `sql` (one or more statements, no parameters); a failure (BEGIN or
// COMMIT included) maps as every other call does.
absl::Status SqliteExec(sqlite3* db, const char* sql);

// Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back if it (or the
// commit) fails, and returns that error.
absl::Status SqliteTransaction(sqlite3* db, const std::function<absl::Status()>& body);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_SQLITE_STATEMENT_H_
