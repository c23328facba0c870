#include "interpose/sql.h"

#include <emmintrin.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <string_view>

#include "tracker/thread_block.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// isspace for the "C" locale, without the call.
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// --- the per-thread cache of masked texts ----------------------------------
//
// Masking reads every byte of every query a program sends, and pgbench-like
// loops send one statement with new numbers each time. A thread keeps the
// last few texts it masked: a text that differs from a cached one only in
// the value of digits that masking replaced — same length, every other byte
// equal, digits at the same positions — masks to the same text.
// Digits are alike to every rule of MaskSql (digit, alphanumeric, identifier
// character; never part of a $tag$), so the two texts have the same
// structure and only replaced bytes differ. Masking marks the digits it
// copies verbatim (t1, $1, "col2"): those must be equal too.

constexpr size_t kCachedBytes = 200;
constexpr unsigned kCacheEntries = 8;
static_assert(std::has_single_bit(kCacheEntries) && kCacheEntries > 1);
// A 64-bit hash shifted right by this is an index into the cache.
constexpr int kCacheSlotShift = 64 - std::countr_zero(kCacheEntries);

struct CachedQuery {
  uint32_t query_id;
  uint16_t len;  // 0 = empty entry
  bool full;     // made under LEAKWATCH_SQL=full (never mixed)
  char text[kCachedBytes];
  // Digits that masking kept (bit i: text[i]), which must match exactly;
  // under LEAKWATCH_SQL=full every byte must.
  uint64_t kept[(kCachedBytes + 63) / 64];
};

static_assert(sizeof(CachedQuery) * kCacheEntries <= kQueryCacheBytes);

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Up to 8 bytes at `p` (`avail` of them readable), zero-padded: one load
// when 8 are there.
uint64_t LoadWord(const char* p, size_t avail) {
  uint64_t w = 0;
  if (avail >= 8) {
    std::memcpy(&w, p, 8);
  } else {
    for (size_t i = 0; i < avail; ++i) {
      w |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    }
  }
  return w;
}

// The high bit of each byte of `w` that is an ASCII digit.
uint64_t DigitBytes(uint64_t w) {
  uint64_t y = w ^ (0x30 * kOnes);  // digits become 0..9
  return ~(((y & (0x7f * kOnes)) + (0x76 * kOnes)) | y) & kHighs;
}

int CacheSlot(const char* sql, size_t len) {
  uint64_t w = LoadWord(sql, len);
  w &= ~((DigitBytes(w) >> 7) * 0xff);
  uint64_t h = (w ^ len) * 0x9e3779b97f4a7c15ull;
  return static_cast<int>(h >> kCacheSlotShift);
}

// Bits [at, at + 16) of the bit set `bits` (at + 16 <= kCachedBytes).
inline uint32_t Bits16(const uint64_t* bits, size_t at) {
  const size_t word = at / 64;
  const unsigned shift = at % 64;
  uint64_t v = bits[word] >> shift;
  if (shift > 48) v |= bits[word + 1] << (64 - shift);
  return static_cast<uint32_t>(v & 0xffff);
}

// The bytes of `v` that are ASCII digits, one bit each.
inline uint32_t DigitBits(__m128i v) {
  const __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
  return static_cast<uint32_t>(
      _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)));
}

// True if the 16 bytes at `a` and `b` are equal but for digits (in both)
// that are not marked in `kept`.
__attribute__((always_inline)) inline bool Matches16(const char* a,
                                                     const char* b,
                                                     uint32_t kept) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  const uint32_t differ =
      ~static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, y))) & 0xffff;
  if (differ == 0) return true;
  return (differ & ~(DigitBits(x) & DigitBits(y) & ~kept)) == 0;
}

// True if `sql` masks to the same text as `entry`'s: equal but for digits
// that masking replaced. Sixteen bytes at a time; the last block is the
// text's last 16 bytes (overlapping the one before), so that no load reads
// past either text.
bool Matches(const CachedQuery& entry, const char* sql, size_t len) {
  if (entry.len != len) return false;
  if (entry.full) return std::memcmp(entry.text, sql, len) == 0;
  if (len < 16) {
    for (size_t i = 0; i < len; ++i) {
      if (sql[i] == entry.text[i]) continue;
      const bool kept = (entry.kept[i / 64] >> (i % 64)) & 1;
      if (kept || !IsDigit(sql[i]) || !IsDigit(entry.text[i])) return false;
    }
    return true;
  }
  size_t i = 0;
  for (; i + 16 < len; i += 16) {
    if (!Matches16(sql + i, entry.text + i, Bits16(entry.kept, i))) {
      return false;
    }
  }
  i = len - 16;
  return Matches16(sql + i, entry.text + i, Bits16(entry.kept, i));
}

// The end of the string literal at `i`: '...' (with '' inside) or, if
// `escape`, E'...' (with \' inside; `i` at the E). The text's end if it is
// not closed.
size_t StringLiteralEnd(const char* sql, size_t len, size_t i, bool escape) {
  if (escape) ++i;
  ++i;
  while (i < len) {
    if (escape && sql[i] == '\\' && i + 1 < len) {
      i += 2;
    } else if (sql[i] == '\'' && i + 1 < len && sql[i + 1] == '\'') {
      i += 2;
    } else if (sql[i] == '\'') {
      return i + 1;
    } else {
      ++i;
    }
  }
  return i;
}

// If a dollar-quoted literal ($$ ... $$, $tag$ ... $tag$; not a $1
// placeholder) starts at the `$` at `i`, its end (the text's end if it is
// not closed); otherwise `i`.
size_t DollarQuotedEnd(const char* sql, size_t len, size_t i) {
  size_t j = i + 1;
  while (j < len &&
         (std::isalpha(static_cast<unsigned char>(sql[j])) || sql[j] == '_')) {
    ++j;
  }
  if (j >= len || sql[j] != '$') return i;
  std::string_view tag(sql + i, j - i + 1);
  for (size_t k = j + 1; k + tag.size() <= len; ++k) {
    if (std::memcmp(sql + k, tag.data(), tag.size()) == 0) {
      return k + tag.size();
    }
  }
  return len;
}

// True if a numeric literal starts at `i` (not a digit of an identifier:
// t1, $1 stay).
bool StartsNumber(const char* sql, size_t len, size_t i) {
  char c = sql[i];
  return (std::isdigit(static_cast<unsigned char>(c)) ||
          (c == '.' && i + 1 < len &&
           std::isdigit(static_cast<unsigned char>(sql[i + 1])))) &&
         (i == 0 || !IsIdentChar(sql[i - 1]));
}

// The end of the numeric literal at `i`.
size_t NumberEnd(const char* sql, size_t len, size_t i) {
  while (i < len &&
         (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '.')) {
    ++i;
  }
  return i;
}

// Ends `out`, `o` bytes written of at most `limit`, with "..." in place of
// its last bytes if need be, and a NUL. Returns the length.
size_t EndWithEllipsis(char* out, size_t o, size_t limit) {
  size_t keep = limit >= 3 ? limit - 3 : 0;
  if (o > keep) o = keep;
  for (int k = 0; k < 3 && o < limit; ++k) out[o++] = '.';
  out[o] = '\0';
  return o;
}

// MaskSql, also setting in `kept` (if not null; bit i of word i / 64) the
// position of every digit it copies verbatim rather than masks (t1, $1,
// "col2"), for the query cache. Positions past kCachedBytes are not marked.
size_t MaskSqlMarking(const char* sql, size_t len, char* out, size_t cap,
                      uint64_t* kept) {
  auto mark = [&](size_t at) {
    if (kept != nullptr && at < kCachedBytes && sql[at] >= '0' &&
        sql[at] <= '9') {
      kept[at / 64] |= uint64_t{1} << (at % 64);
    }
  };
  if (cap == 0) return 0;
  size_t o = 0;
  const size_t limit = cap - 1;
  bool cut = false;
  auto put = [&](char c) {
    if (o < limit) {
      out[o++] = c;
    } else {
      cut = true;
    }
  };
  size_t i = 0;
  while (i < len && !cut) {
    char c = sql[i];
    if (IsSpace(c)) {
      while (i < len && IsSpace(sql[i])) ++i;
      if (o > 0 && i < len) put(' ');
      continue;
    }
    bool escape_string = (c == 'E' || c == 'e') && i + 1 < len &&
                         sql[i + 1] == '\'' &&
                         (i == 0 || !IsIdentChar(sql[i - 1]));
    if (c == '\'' || escape_string) {
      i = StringLiteralEnd(sql, len, i, escape_string);
      put('?');
      continue;
    }
    // "quoted identifiers" and MySQL `backquoted` ones are names: kept.
    if (c == '"' || c == '`') {
      put(c);
      ++i;
      while (i < len && !cut) {
        mark(i);
        char d = sql[i++];
        put(d);
        if (d == c) break;
      }
      continue;
    }
    if (c == '$' && (i == 0 || !IsIdentChar(sql[i - 1]))) {
      size_t end = DollarQuotedEnd(sql, len, i);
      if (end != i) {
        i = end;
        put('?');
        continue;
      }
    }
    if (StartsNumber(sql, len, i)) {
      i = NumberEnd(sql, len, i);
      put('?');
      continue;
    }
    mark(i);
    put(c);
    ++i;
  }
  if (cut || i < len) return EndWithEllipsis(out, o, limit);
  out[o] = '\0';
  return o;
}

}  // namespace

size_t MaskSql(const char* sql, size_t len, char* out, size_t cap) {
  return MaskSqlMarking(sql, len, out, cap, nullptr);
}

namespace {

// QueryId for a text its thread's cache does not have: masks and interns it,
// and caches it in `entry` (null: not cacheable).
__attribute__((noinline)) uint32_t MaskAndIntern(Tracker& tracker,
                                                 const char* sql, size_t n,
                                                 bool full,
                                                 CachedQuery* entry) {
  char buf[kMaxQueryBytes + 1];
  size_t out;
  uint64_t kept[(kCachedBytes + 63) / 64] = {};
  if (!full) {
    out = MaskSqlMarking(sql, n, buf, sizeof buf, kept);
  } else {
    out = n < kMaxQueryBytes ? n : kMaxQueryBytes;
    std::memcpy(buf, sql, out);
    if (out < n && out >= 3) std::memcpy(buf + out - 3, "...", 3);
  }
  uint32_t id = tracker.InternQuery(std::string_view(buf, out));
  if (entry != nullptr) {
    RewriteCacheEntry(entry->len, static_cast<uint16_t>(n), [&] {
      entry->query_id = id;
      entry->full = full;
      std::memcpy(entry->text, sql, n);
      std::memcpy(entry->kept, kept, sizeof kept);
    });
  }
  return id;
}

}  // namespace

uint32_t QueryId(const char* sql, long len) {
  Tracker& tracker = Tracker::Get();
  SqlMode mode = tracker.options().sql;
  if (sql == nullptr || mode == kSqlOff) return 0;
  size_t n = len < 0 ? std::strlen(sql) : static_cast<size_t>(len);
  const bool full = mode != kSqlMasked;
  CachedQuery* entry = nullptr;
  unsigned char* block = n > 0 && n <= kCachedBytes ? ThreadBlock() : nullptr;
  if (block != nullptr) {
    auto* queries = reinterpret_cast<CachedQuery*>(block + kQueryCacheOffset);
    entry = &queries[CacheSlot(sql, n)];
    if (entry->full == full && Matches(*entry, sql, n)) return entry->query_id;
  }
  return MaskAndIntern(tracker, sql, n, full, entry);
}

uint32_t DescribedQueryId(const char* prefix, const char* name) {
  Tracker& tracker = Tracker::Get();
  if (tracker.options().sql == kSqlOff) return 0;
  char buf[kMaxQueryBytes];
  size_t n = 0;
  for (const char* part : {prefix, name != nullptr ? name : ""}) {
    size_t add = std::min(std::strlen(part), sizeof buf - n);
    std::memcpy(buf + n, part, add);
    n += add;
  }
  return tracker.InternQuery(std::string_view(buf, n));
}

namespace {

// If `p` starts with the keyword `word` (upper case) followed by white space,
// `;` or the end, returns the position after it; else nullptr.
const char* SkipKeyword(const char* p, const char* word) {
  for (; *word != '\0'; ++p, ++word) {
    const char upper = *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p;
    if (upper != *word) return nullptr;
  }
  return IsIdentChar(*p) || *p == '"' ? nullptr : p;
}

const char* SkipSpace(const char* p) {
  while (IsSpace(*p)) ++p;
  return p;
}

// True if only white space and one optional `;` are left.
bool AtEnd(const char* p) {
  p = SkipSpace(p);
  if (*p == ';') p = SkipSpace(p + 1);
  return *p == '\0';
}

}  // namespace

Deallocation ParseDeallocation(const char* sql, char* name, size_t cap) {
  if (sql == nullptr || name == nullptr || cap == 0) return Deallocation::kNone;
  const char* p = SkipSpace(sql);
  // Every query goes through here: most leave at their first letter.
  if ((*p | 0x20) != 'd') return Deallocation::kNone;
  if (const char* rest = SkipKeyword(p, "DISCARD")) {
    rest = SkipKeyword(SkipSpace(rest), "ALL");
    return rest != nullptr && AtEnd(rest) ? Deallocation::kAll
                                          : Deallocation::kNone;
  }
  p = SkipKeyword(p, "DEALLOCATE");
  if (p == nullptr || !IsSpace(*p)) return Deallocation::kNone;
  p = SkipSpace(p);
  if (const char* rest = SkipKeyword(p, "PREPARE")) {
    if (IsSpace(*rest)) p = SkipSpace(rest);
  }
  if (const char* rest = SkipKeyword(p, "ALL");
      rest != nullptr && AtEnd(rest)) {
    return Deallocation::kAll;
  }
  size_t n = 0;
  if (*p == '"') {  // a quoted identifier: "" is one quote
    for (++p;; ++p) {
      if (*p == '\0') return Deallocation::kNone;
      if (*p == '"') {
        if (p[1] != '"') break;
        ++p;
      }
      if (n + 1 >= cap) return Deallocation::kNone;
      name[n++] = *p;
    }
    ++p;
  } else {
    for (; IsIdentChar(*p) || (static_cast<unsigned char>(*p) & 0x80); ++p) {
      if (n + 1 >= cap) return Deallocation::kNone;
      // The server folds ASCII letters only.
      name[n++] = *p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p;
    }
  }
  name[n] = '\0';
  return n > 0 && AtEnd(p) ? Deallocation::kOne : Deallocation::kNone;
}

}  // namespace leakwatch
