// Tests for interpose/sql.h: the query text kept for a handle.
#include "interpose/sql.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace leakwatch {
namespace {

std::string Mask(const std::string& sql, size_t cap = kMaxQueryBytes + 1) {
  std::string out(cap, '\0');
  size_t n = MaskSql(sql.data(), sql.size(), out.data(), cap);
  EXPECT_EQ(std::strlen(out.c_str()), n);
  out.resize(n);
  return out;
}

TEST(MaskSqlTest, StringAndNumberLiteralsBecomeQuestionMarks) {
  EXPECT_EQ(Mask("SELECT * FROM users WHERE id = 42"),
            "SELECT * FROM users WHERE id = ?");
  EXPECT_EQ(Mask("SELECT * FROM users WHERE name = 'O''Brien' AND age > 3.5"),
            "SELECT * FROM users WHERE name = ? AND age > ?");
  EXPECT_EQ(Mask("SELECT E'it\\'s' , 'a'"), "SELECT ? , ?");
  EXPECT_EQ(Mask("SELECT .5, 1e3, 0x1F"), "SELECT ?, ?, ?");
  EXPECT_EQ(Mask("INSERT INTO t VALUES (1,'x'),(2,'y')"),
            "INSERT INTO t VALUES (?,?),(?,?)");
}

TEST(MaskSqlTest, IdentifiersPlaceholdersAndQuotedNamesStay) {
  EXPECT_EQ(Mask("SELECT t1.c2 FROM t1 WHERE c3 = $1 AND \"Col 9\" = $2"),
            "SELECT t1.c2 FROM t1 WHERE c3 = $1 AND \"Col 9\" = $2");
  EXPECT_EQ(Mask("SELECT `order 1` FROM `t2` WHERE x = 5"),
            "SELECT `order 1` FROM `t2` WHERE x = ?");
  EXPECT_EQ(Mask("SELECT abalance FROM pgbench_accounts WHERE aid = 77;"),
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?;");
}

TEST(MaskSqlTest, DollarQuotedBodiesAreLiterals) {
  EXPECT_EQ(Mask("DO $$ BEGIN PERFORM 1; END $$"), "DO ?");
  EXPECT_EQ(Mask("SELECT $fn$ secret 'x' $fn$ || 'y'"), "SELECT ? || ?");
  EXPECT_EQ(Mask("SELECT $$ unterminated"), "SELECT ?");
}

TEST(MaskSqlTest, WhitespaceIsFoldedAndUnterminatedStringsAreSafe) {
  EXPECT_EQ(Mask("  SELECT\n\t  1\n  FROM   t  "), "SELECT ? FROM t");
  EXPECT_EQ(Mask("SELECT 'never closed"), "SELECT ?");
  EXPECT_EQ(Mask(""), "");
}

TEST(MaskSqlTest, LongQueriesAreCutWithAnEllipsis) {
  std::string sql = "SELECT " + std::string(500, 'c') + " FROM t";
  std::string out = Mask(sql);
  EXPECT_EQ(out.size(), kMaxQueryBytes);
  EXPECT_EQ(out.substr(out.size() - 3), "...");
  EXPECT_EQ(out.substr(0, 8), "SELECT c");
  // A tiny buffer still gets a terminated, cut text.
  EXPECT_EQ(Mask("SELECT 1 FROM t", 8), "SELE...");
}

}  // namespace
}  // namespace leakwatch
