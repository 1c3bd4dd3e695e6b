#include "server/sqlite_statement.h"

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
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

}  // namespace
}  // namespace bnserve
