// The query text a hook keeps for a handle: cut to kMaxQueryBytes and, by
// default (LEAKWATCH_SQL=masked), with its literals replaced by `?` so that
// the same statement with other values is one interned text, and secrets in
// literals stay out of reports.
//
// Thread safety: all may be called from any thread, from a hook. MaskSql is
// a pure function: it writes only `out`, allocates nothing, takes no lock.
// QueryId and DescribedQueryId read the tracker's options and intern their
// text in the tracker's string depot, which takes its insert lock and
// allocates only for a text it has not seen; QueryId also keeps a cache of
// masked texts in the calling thread's block (tracker/thread_block.h,
// mapped on the thread's first use), which a signal handler's hook on the
// same thread sees whole or empty.
#ifndef LEAKWATCH_INTERPOSE_SQL_H_
#define LEAKWATCH_INTERPOSE_SQL_H_

#include <cstddef>
#include <cstdint>

namespace leakwatch {

inline constexpr size_t kMaxQueryBytes = 240;

// Writes at most `cap` - 1 bytes of `sql` (length `len`) to `out` with every
// string literal ('...', E'...', $$...$$, $tag$...$tag$, "..." is an
// identifier and kept) and numeric literal replaced by `?` and runs of white
// space folded into one space; appends "..." if it had to cut. Returns the
// length written (`out` is NUL-terminated).
size_t MaskSql(const char* sql, size_t len, char* out, size_t cap);

// The query-depot id for `sql` under the LEAKWATCH_SQL mode in force: masked,
// cut (full), or 0 (off, or null). `len` < 0 means NUL-terminated.
uint32_t QueryId(const char* sql, long len);

// The query-depot id of a fixed description ("EXECUTE name" for a prepared
// statement run by name).
uint32_t DescribedQueryId(const char* prefix, const char* name);

// What a query text does to the session's prepared statements, when it is
// one statement that drops them: `DEALLOCATE [PREPARE] name` (an unquoted
// name folded to lower case, as the server does; a "quoted" one as written)
// or `DEALLOCATE [PREPARE] ALL` / `DISCARD ALL`, case-insensitive, with
// white space around and an optional final `;`. Anything else is kNone.
// Pure: writes only `name`, allocates nothing.
enum class Deallocation { kNone, kOne, kAll };

// For kOne, the statement's name goes to `name` (NUL-terminated); a name
// that does not fit in `cap` - 1 bytes makes it kNone.
Deallocation ParseDeallocation(const char* sql, char* name, size_t cap);

// False if ParseDeallocation(sql, ...) is surely kNone: the text's first
// letter (after white space) is not a D. Inline, for every query's path.
inline bool MayDeallocate(const char* sql) {
  while (*sql == ' ' || (*sql >= '\t' && *sql <= '\r')) ++sql;
  return (*sql | 0x20) == 'd';
}

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_SQL_H_
