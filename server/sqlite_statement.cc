#include "server/sqlite_statement.h"

#include <sqlite3.h>

#include <string>

#include "core/logging.h"
#include "core/status_macros.h"

namespace bnserve {

SqliteStatement::~SqliteStatement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

SqliteStatement& SqliteStatement::Bind(int index, const std::string& text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

SqliteStatement& SqliteStatement::BindBlob(int index, const void* data, size_t size) {
  static const char kEmpty = 0;
  sqlite3_bind_blob64(stmt_, index, size == 0 ? &kEmpty : data, size, SQLITE_TRANSIENT);
  return *this;
}

absl::StatusOr<bool> SqliteStatement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, sqlite3_sql(stmt_));
}

absl::Status SqliteStatement::Run() { return Step().status(); }

absl::Status SqliteStatement::ForEachRow(const std::function<absl::Status()>& on_row) {
  while (true) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
    RETURN_IF_ERROR(on_row());
  }
}

bool SqliteStatement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t SqliteStatement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string SqliteStatement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  return text == nullptr ? std::string()
                         : std::string(reinterpret_cast<const char*>(text),
                                       sqlite3_column_bytes(stmt_, column));
}

std::pair<const void*, size_t> SqliteStatement::Blob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  return {data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
}

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  const int code = sqlite3_errcode(db);
  std::string message = absl::StrCat("database error in \"", what, "\": ", sqlite3_errmsg(db));
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status SqliteExec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    return absl::InternalError(absl::StrCat("database error: ", message));
  }
  return absl::OkStatus();
}

absl::Status SqliteTransaction(sqlite3* db, const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(SqliteExec(db, "BEGIN IMMEDIATE"));
  absl::Status status = body();
  if (status.ok()) status = SqliteExec(db, "COMMIT");
  if (!status.ok() && !sqlite3_get_autocommit(db)) {
    absl::Status rollback = SqliteExec(db, "ROLLBACK");
    if (!rollback.ok()) {
      BNSERVE_LOG(ERROR) << "rollback failed: " << rollback;
    }
  }
  return status;
}

}  // namespace bnserve
