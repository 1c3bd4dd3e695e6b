#include "server/sqlite_statement.h"

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;

class SqliteStatementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    ASSERT_OK(SqliteExec(db_, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"));
  }
  void TearDown() override {
    for (sqlite3_stmt* stmt : prepared_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }

  SqliteStatement Prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr), SQLITE_OK) << sql;
    prepared_.push_back(stmt);
    return SqliteStatement(db_, stmt);
  }

  std::vector<std::string> Values() {
    std::vector<std::string> values;
    SqliteStatement select = Prepare("SELECT v FROM t ORDER BY k");
    EXPECT_OK(select.ForEachRow([&] {
      values.push_back(select.Text(0));
      return absl::OkStatus();
    }));
    return values;
  }

  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> prepared_;
};

TEST_F(SqliteStatementTest, BindsRunsAndReadsEveryRowAndIsReusable) {
  sqlite3_stmt* cached = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db_, "INSERT INTO t (k, v) VALUES (?, ?)", -1, &cached, nullptr),
            SQLITE_OK);
  prepared_.push_back(cached);
  for (int64_t k : {2, 1, 3}) {
    // Each use resets the cached statement when it ends; a moved-from one
    // leaves it alone.
    SqliteStatement insert(db_, cached);
    SqliteStatement moved(std::move(insert));
    ASSERT_OK(moved.Bind(1, k).Bind(2, "v" + std::to_string(k)).Run());
  }
  EXPECT_THAT(Values(), ::testing::ElementsAre("v1", "v2", "v3"));
  // ForEachRow stops at the first error of its callback.
  SqliteStatement select = Prepare("SELECT k FROM t ORDER BY k");
  int rows = 0;
  EXPECT_THAT(select.ForEachRow([&] {
    ++rows;
    return select.Int(0) == 2 ? absl::DataLossError("row 2") : absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(rows, 2);
}

TEST_F(SqliteStatementTest, ATransactionRollsBackWhenItsBodyFails) {
  EXPECT_THAT(SqliteTransaction(db_,
                                [&] {
                                  SqliteStatement insert =
                                      Prepare("INSERT INTO t (k, v) VALUES (1, 'kept?')");
                                  EXPECT_OK(insert.Run());
                                  return absl::InternalError("fails after the insert");
                                }),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(Values(), ::testing::IsEmpty());
  ASSERT_OK(SqliteTransaction(db_, [&] {
    return Prepare("INSERT INTO t (k, v) VALUES (1, 'kept')").Run();
  }));
  EXPECT_THAT(Values(), ::testing::ElementsAre("kept"));
  // A constraint violation is an error with the statement's SQL in it.
  const absl::Status status = Prepare("INSERT INTO t (k, v) VALUES (1, 'again')").Run();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("INSERT INTO t"));
  EXPECT_THAT(SqliteExec(db_, "NOT SQL"), StatusIs(absl::StatusCode::kInternal));
}

// A full database (made full with PRAGMA max_page_count, which fails the
// page allocation with SQLITE_FULL, the code a full disk gives) is
// RESOURCE_EXHAUSTED "registry disk full" from a statement, from an exec and
// from inside a transaction alike, and the transaction leaves nothing behind.
TEST_F(SqliteStatementTest, AFullDatabaseIsResourceExhaustedOnEveryPath) {
  ASSERT_OK(SqliteExec(db_, "PRAGMA max_page_count = 4"));
  const char* kBig = "INSERT INTO t (k, v) VALUES (7, printf('%.100000c', 'x'))";
  const absl::Status statement = Prepare(kBig).Run();
  EXPECT_THAT(statement, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(statement.message()), ::testing::HasSubstr("registry disk full"));
  const absl::Status exec = SqliteExec(db_, kBig);
  EXPECT_THAT(exec, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(exec.message()), ::testing::HasSubstr("registry disk full"));
  EXPECT_THAT(SqliteTransaction(db_,
                                [&] {
                                  RETURN_IF_ERROR(
                                      Prepare("INSERT INTO t (k, v) VALUES (1, 'small')").Run());
                                  return Prepare(kBig).Run();
                                }),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(Values(), ::testing::IsEmpty());
  // What fits still goes in.
  ASSERT_OK(SqliteTransaction(db_, [&] {
    return Prepare("INSERT INTO t (k, v) VALUES (1, 'small')").Run();
  }));
  EXPECT_THAT(Values(), ::testing::ElementsAre("small"));
}

// Every I/O error, whatever its extended code, is one status: UNAVAILABLE
// "registry I/O error"; a busy database is UNAVAILABLE too, corruption
// DATA_LOSS.
TEST(SqliteStatusFromCodeTest, MapsEachFamilyOfCodesToOneStatus) {
  for (int code : {SQLITE_IOERR, SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC, SQLITE_IOERR_SHMSIZE}) {
    const absl::Status status = SqliteStatusFromCode(code, "COMMIT", "disk I/O error");
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable)) << code;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("registry I/O error"));
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("COMMIT"));
  }
  EXPECT_THAT(SqliteStatusFromCode(SQLITE_FULL, "COMMIT", "database or disk is full"),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(SqliteStatusFromCode(SQLITE_BUSY_SNAPSHOT, "BEGIN IMMEDIATE", "busy"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(SqliteStatusFromCode(SQLITE_CORRUPT_VTAB, "SELECT", "malformed"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(SqliteStatusFromCode(SQLITE_CONSTRAINT_PRIMARYKEY, "INSERT", "unique"),
              StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace bnserve
