// Tests for interpose/sql.h: the query text kept for a handle.
#include "interpose/sql.h"

#include "tracker/tracker.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

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

// QueryId keeps a per-thread cache of masked texts and answers a text that
// differs from a cached one only in digit values without masking it again.
// Whatever the cache does, the id must name exactly MaskSql's text.
std::string QueryText(uint32_t id) {
  Depot<char>::View v = Tracker::Get().strings().Get(id);
  return std::string(v.data, v.size);
}

TEST(QueryIdTest, SameStatementWithOtherNumbersIsOneIdThroughTheCache) {
  uint32_t a = QueryId("SELECT abalance FROM pgbench_accounts WHERE aid = 123456;", -1);
  uint32_t b = QueryId("SELECT abalance FROM pgbench_accounts WHERE aid = 654321;", -1);
  uint32_t c = QueryId("SELECT abalance FROM pgbench_accounts WHERE aid = 99;", -1);
  ASSERT_NE(a, 0u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(QueryText(a), "SELECT abalance FROM pgbench_accounts WHERE aid = ?;");
}

TEST(QueryIdTest, KeptDigitsElsewhereDoNotDefeatTheCache) {
  uint32_t a = QueryId("SELECT c FROM sbtest1 WHERE id=5005", -1);
  uint32_t b = QueryId("SELECT c FROM sbtest1 WHERE id=6116", -1);
  uint32_t c = QueryId("SELECT c FROM sbtest2 WHERE id=6116", -1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(QueryText(c), "SELECT c FROM sbtest2 WHERE id=?");
}

TEST(QueryIdTest, DigitsThatMaskingKeepsAreNeverConfused) {
  EXPECT_EQ(QueryText(QueryId("SELECT c FROM t1 WHERE x = 5", -1)),
            "SELECT c FROM t1 WHERE x = ?");
  EXPECT_EQ(QueryText(QueryId("SELECT c FROM t2 WHERE x = 5", -1)),
            "SELECT c FROM t2 WHERE x = ?");
  EXPECT_EQ(QueryText(QueryId("SELECT $1, \"c3\"", -1)), "SELECT $1, \"c3\"");
  EXPECT_EQ(QueryText(QueryId("SELECT $2, \"c4\"", -1)), "SELECT $2, \"c4\"");
}

// A reproducible stream of pseudo-random numbers (xorshift64).
struct XorShift {
  uint64_t seed;
  uint64_t operator()() {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  }
};

// Random texts over SQL's awkward pieces, each followed by variants with
// random digits changed: every id's text equals MaskSql of what was sent.
TEST(QueryIdTest, CachedAnswersAlwaysEqualMasking) {
  const char* pieces[] = {"SELECT ", " ", "  ", "'", "''", "\"", "`", "$", "$a$",
                          "$$", "E'", "e", "\\", "1", "23", ".", "t", "_",
                          "x9", "(", ",", "=", "\n", "--", "0x1F", "1e5"};
  const int kPieces = sizeof pieces / sizeof pieces[0];
  XorShift next{0x2545f4914f6cdd1dull};
  int cached_pairs = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    int count = 1 + static_cast<int>(next() % 12);
    for (int i = 0; i < count; ++i) text += pieces[next() % kPieces];
    for (int variant = 0; variant < 4; ++variant) {
      std::string sent = text;
      if (variant > 0) {
        for (char& ch : sent) {
          if (ch >= '0' && ch <= '9' && next() % 2 == 0) {
            ch = static_cast<char>('0' + next() % 10);
          }
        }
      }
      uint32_t id = QueryId(sent.c_str(), static_cast<long>(sent.size()));
      ASSERT_EQ(QueryText(id), Mask(sent)) << "sent: " << sent;
      if (variant > 0 && sent != text) ++cached_pairs;
    }
  }
  EXPECT_GT(cached_pairs, 500);  // the digit-variant path was exercised
}

// Random texts, each sent with its length, then NUL-terminated with digits
// changed or cut short (a prefix of a cached text, whose NUL sits where the
// cached one goes on): every id's text equals MaskSql of what was sent.
TEST(QueryIdTest, NulTerminatedTextsAndPrefixesOfCachedOnesEqualMasking) {
  const char* pieces[] = {"SELECT ", " ", "'", "\"", "$a$", "E'", "1",
                          "23",      "t", "x9", "=", "\n", "0x1F", "abcdefgh"};
  const int kPieces = sizeof pieces / sizeof pieces[0];
  XorShift next{0x9e3779b97f4a7c15ull};
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    int count = 1 + static_cast<int>(next() % 40);
    for (int i = 0; i < count; ++i) text += pieces[next() % kPieces];
    ASSERT_EQ(QueryText(QueryId(text.data(), static_cast<long>(text.size()))),
              Mask(text));
    for (int variant = 0; variant < 4; ++variant) {
      std::string sent = text;
      for (char& ch : sent) {
        if (ch >= '0' && ch <= '9' && next() % 2 == 0) {
          ch = static_cast<char>('0' + next() % 10);
        }
      }
      if (variant == 3) sent.resize(next() % (sent.size() + 1));
      ASSERT_EQ(QueryText(QueryId(sent.c_str(), -1)), Mask(sent))
          << "sent: " << sent;
    }
  }
}

// A text that ends at the end of a readable page (the next one is not) is
// never read past: NUL-terminated or with its length, whatever the cache
// holds (here: longer texts with the same beginning).
TEST(QueryIdTest, TextsEndingAtAnUnreadablePageAreReadNoFurther) {
  const long page = sysconf(_SC_PAGESIZE);
  void* map = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  char* end = static_cast<char*>(map) + page;
  ASSERT_EQ(mprotect(end, page, PROT_NONE), 0);
  const std::string longest =
      "SELECT abalance FROM pgbench_accounts WHERE aid = 4242 AND bid = 7;";
  for (int round = 0; round < 2; ++round) {
    for (size_t n = 0; n <= longest.size(); ++n) {
      // Cached first: the whole text, so that a prefix finds a longer entry.
      QueryId(longest.c_str(), -1);
      const std::string text = longest.substr(0, n);
      char* nul_terminated = end - (n + 1);
      std::memcpy(nul_terminated, text.c_str(), n + 1);
      ASSERT_EQ(QueryText(QueryId(nul_terminated, -1)), Mask(text)) << n;
      char* counted = end - n;
      std::memcpy(counted, text.data(), n);
      ASSERT_EQ(QueryText(QueryId(counted, static_cast<long>(n))), Mask(text))
          << n;
    }
  }
  munmap(map, 2 * page);
}

// DEALLOCATE and DISCARD ALL, as the libpq hooks read them.
TEST(ParseDeallocationTest, NamesAllAndEverythingElse) {
  char name[64];
  auto parse = [&](const char* sql) {
    name[0] = '\0';
    return ParseDeallocation(sql, name, sizeof name);
  };
  EXPECT_EQ(parse("DEALLOCATE req_17"), Deallocation::kOne);
  EXPECT_STREQ(name, "req_17");
  EXPECT_EQ(parse("  \n deallocate prepare Req_3 ;  "), Deallocation::kOne);
  EXPECT_STREQ(name, "req_3");  // folded, as the server does
  EXPECT_EQ(parse("DEALLOCATE \"Req \"\"x\"\"\";"), Deallocation::kOne);
  EXPECT_STREQ(name, "Req \"x\"");
  EXPECT_EQ(parse("DEALLOCATE prepare"), Deallocation::kOne);  // a name
  EXPECT_STREQ(name, "prepare");
  EXPECT_EQ(parse("DEALLOCATE ALL"), Deallocation::kAll);
  EXPECT_EQ(parse("deallocate prepare all;"), Deallocation::kAll);
  EXPECT_EQ(parse("DISCARD ALL"), Deallocation::kAll);
  EXPECT_EQ(parse("DEALLOCATE \"all\""), Deallocation::kOne);
  EXPECT_STREQ(name, "all");
  EXPECT_EQ(parse("DEALLOCATE allx"), Deallocation::kOne);
  EXPECT_STREQ(name, "allx");
  EXPECT_EQ(parse("DEALLOCATE a; SELECT 1"), Deallocation::kNone);
  EXPECT_EQ(parse("DEALLOCATEx a"), Deallocation::kNone);
  EXPECT_EQ(parse("DEALLOCATE"), Deallocation::kNone);
  EXPECT_EQ(parse("DEALLOCATE \"unterminated"), Deallocation::kNone);
  EXPECT_EQ(parse("DISCARD PLANS"), Deallocation::kNone);
  EXPECT_EQ(parse("SELECT 1"), Deallocation::kNone);
  EXPECT_EQ(parse(nullptr), Deallocation::kNone);
  char tiny[4];
  EXPECT_EQ(ParseDeallocation("DEALLOCATE abcd", tiny, sizeof tiny),
            Deallocation::kNone);
  EXPECT_EQ(ParseDeallocation("DEALLOCATE abc", tiny, sizeof tiny),
            Deallocation::kOne);
}

}  // namespace
}  // namespace leakwatch
