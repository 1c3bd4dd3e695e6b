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

absl::Status SqliteStatusFromCode(int code, absl::string_view what, absl::string_view detail) {
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat("registry busy in \"", what, "\": ", detail));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(
          absl::StrCat("registry disk full in \"", what, "\": ", detail));
    case SQLITE_IOERR:
      return absl::UnavailableError(
          absl::StrCat("registry I/O error in \"", what, "\": ", detail));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(
          absl::StrCat("registry corrupt in \"", what, "\": ", detail));
    default:
      return absl::InternalError(
          absl::StrCat("database error in \"", what, "\": ", detail));
  }
}

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return SqliteStatusFromCode(sqlite3_extended_errcode(db), what, sqlite3_errmsg(db));
}

absl::Status SqliteExec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    return SqliteStatusFromCode(rc, sql, message);
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
