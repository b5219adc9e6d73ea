// The thin layer over SQLite's C API: what it does with a bind SQLite refuses.
#include "store/sqlite/sqlite_db.h"

#include <gtest/gtest.h>

#include "util/testing/temp_dir.h"

namespace pushhook::store::sqlite {
namespace {

class SqliteDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Connection::Open(dir_.File("t.db"), false);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    db_ = std::move(opened.value());
  }
  util::testing::TempDir dir_{"pushhook-sqlite-db"};  // first in, last out
  std::unique_ptr<Connection> db_;
};

// A parameter SQLite refused used to be left NULL, and the statement ran all the same.
TEST_F(SqliteDbTest, AFailedBindFailsTheStepInsteadOfRunningWithNull) {
  Statement& st = *db_->Prepare("SELECT ?1").value();
  st.Bind(1, int64_t{5}).Bind(2, std::string_view("no such parameter"));
  model::Status status;
  EXPECT_FALSE(st.Step(&status));
  EXPECT_EQ(status.code(), model::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "sqlite bind of parameter 2: column index out of range");
  st.Reset();
  st.Bind(1, int64_t{7});
  ASSERT_TRUE(st.Step(&status)) << status.message();
  EXPECT_EQ(st.Int(0), 7) << "Reset() forgets the failed bind";
  st.Reset();
  EXPECT_EQ(db_->Prepare("SELECT ?1").value()->BindNull(3).Run().message(),
            "sqlite bind of parameter 3: column index out of range");
}

}  // namespace
}  // namespace pushhook::store::sqlite
