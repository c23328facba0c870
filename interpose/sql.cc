#include "interpose/sql.h"

#include <cctype>
#include <cstring>
#include <string>

#include "tracker/tracker.h"

namespace leakwatch {
namespace {

bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
}

}  // namespace

size_t MaskSql(const char* sql, size_t len, char* out, size_t cap) {
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
    if (std::isspace(static_cast<unsigned char>(c))) {
      while (i < len && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
      if (o > 0 && i < len) put(' ');
      continue;
    }
    // 'string' (with '' inside) and E'string' (with \' inside).
    bool escape_string =
        (c == 'E' || c == 'e') && i + 1 < len && sql[i + 1] == '\'' &&
        (i == 0 || !IsIdentChar(sql[i - 1]));
    if (c == '\'' || escape_string) {
      if (escape_string) ++i;
      ++i;
      while (i < len) {
        if (escape_string && sql[i] == '\\' && i + 1 < len) {
          i += 2;
        } else if (sql[i] == '\'' && i + 1 < len && sql[i + 1] == '\'') {
          i += 2;
        } else if (sql[i] == '\'') {
          ++i;
          break;
        } else {
          ++i;
        }
      }
      put('?');
      continue;
    }
    // "quoted identifiers" and MySQL `backquoted` ones are names: kept.
    if (c == '"' || c == '`') {
      put(c);
      ++i;
      while (i < len && !cut) {
        char d = sql[i++];
        put(d);
        if (d == c) break;
      }
      continue;
    }
    // $$ ... $$ and $tag$ ... $tag$ (but not $1 placeholders).
    if (c == '$' && (i == 0 || !IsIdentChar(sql[i - 1]))) {
      size_t j = i + 1;
      while (j < len && (std::isalpha(static_cast<unsigned char>(sql[j])) ||
                         sql[j] == '_')) {
        ++j;
      }
      if (j < len && sql[j] == '$') {
        std::string tag(sql + i, j - i + 1);
        const char* end = nullptr;
        for (size_t k = j + 1; k + tag.size() <= len; ++k) {
          if (std::memcmp(sql + k, tag.data(), tag.size()) == 0) {
            end = sql + k;
            break;
          }
        }
        i = end != nullptr ? static_cast<size_t>(end - sql) + tag.size() : len;
        put('?');
        continue;
      }
    }
    // Numbers that are not part of an identifier (t1, $1 stay).
    if ((std::isdigit(static_cast<unsigned char>(c)) ||
         (c == '.' && i + 1 < len &&
          std::isdigit(static_cast<unsigned char>(sql[i + 1])))) &&
        (i == 0 || !IsIdentChar(sql[i - 1]))) {
      while (i < len && (std::isalnum(static_cast<unsigned char>(sql[i])) ||
                         sql[i] == '.')) {
        ++i;
      }
      put('?');
      continue;
    }
    put(c);
    ++i;
  }
  if (i < len) cut = true;
  if (cut) {
    size_t keep = limit >= 3 ? limit - 3 : 0;
    if (o > keep) o = keep;
    for (int k = 0; k < 3 && o < limit; ++k) out[o++] = '.';
  }
  out[o] = '\0';
  return o;
}

uint32_t QueryId(const char* sql, long len) {
  Tracker& tracker = Tracker::Get();
  SqlMode mode = tracker.options().sql;
  if (sql == nullptr || mode == kSqlOff) return 0;
  size_t n = len < 0 ? std::strlen(sql) : static_cast<size_t>(len);
  char buf[kMaxQueryBytes + 1];
  size_t out;
  if (mode == kSqlMasked) {
    out = MaskSql(sql, n, buf, sizeof buf);
  } else {
    out = n < kMaxQueryBytes ? n : kMaxQueryBytes;
    std::memcpy(buf, sql, out);
    if (out < n && out >= 3) std::memcpy(buf + out - 3, "...", 3);
  }
  return tracker.InternQuery(std::string_view(buf, out));
}

uint32_t DescribedQueryId(const char* prefix, const char* name) {
  Tracker& tracker = Tracker::Get();
  if (tracker.options().sql == kSqlOff) return 0;
  std::string text = std::string(prefix) + (name != nullptr ? name : "");
  if (text.size() > kMaxQueryBytes) text.resize(kMaxQueryBytes);
  return tracker.InternQuery(text);
}

}  // namespace leakwatch
