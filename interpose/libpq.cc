// Hooks for libpq (PostgreSQL's client library).
//
// Handles: PGconn (pg.conn), PGresult (pg.result), PGcancel (pg.cancel), and
// the named prepared statements of a connection's session (pg.prepared: no
// client memory, a synthetic key, see PreparedKey). Every function of libpq
// 15 that creates or frees one of them is hooked (and libpq 17's
// PQclosePrepared/PQsendClosePrepared), and
// so are the calls that make a connection active (for its idle time). A
// connection's identity is read here, on the calling thread, when a connect
// completes (PQconnectdb*, PQsetdbLogin, PQconnectPoll/PQresetPoll returning
// OK, PQreset) — never by the watchdog, which would race with PQfinish.
#include <errno.h>  // program_invocation_name (GNU)
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "interpose/hook.h"
#include "interpose/kinds.h"
#include "interpose/real.h"
#include "interpose/sql.h"

// libpq 17's, declared here for older headers.
#ifndef LIBPQ_HAS_CLOSE_PREPARED
extern "C" {
PGresult* PQclosePrepared(PGconn* conn, const char* stmt);
int PQsendClosePrepared(PGconn* conn, const char* stmt);
}
#endif

namespace leakwatch {

const char* const kLibpqSonames[] = {"libpq.so.5", "libpq.so", nullptr};
ClientLibrary g_libpq{"libpq", kLibpqSonames};

namespace {

// Real functions: the hooked ones and those we call to read identities.
// clang-format off
#define LW_LIBPQ_FUNCTIONS(X)                                                 \
  X(PQconnectdb) X(PQconnectdbParams) X(PQsetdbLogin) X(PQconnectStart)       \
  X(PQconnectStartParams) X(PQconnectPoll) X(PQresetStart) X(PQresetPoll)     \
  X(PQreset) X(PQfinish) X(PQexec) X(PQexecParams) X(PQprepare)               \
  X(PQexecPrepared) X(PQdescribePrepared) X(PQdescribePortal) X(PQgetResult)  \
  X(PQmakeEmptyPGresult) X(PQcopyResult) X(PQfn) X(PQclear) X(PQgetCancel)    \
  X(PQfreeCancel) X(PQsendQuery) X(PQsendQueryParams) X(PQsendPrepare)        \
  X(PQsendQueryPrepared) X(PQsendDescribePrepared) X(PQsendDescribePortal)    \
  X(PQconsumeInput) X(PQputCopyData) X(PQputCopyEnd) X(PQgetCopyData)         \
  X(PQpipelineSync) X(PQsendFlushRequest) X(PQdb) X(PQuser) X(PQhost)         \
  X(PQport) X(PQbackendPID) X(PQstatus) X(PQresultStatus)
// clang-format on

#define LW_DECLARE_PQ_REAL(...) LW_DECLARE_REAL(g_libpq, __VA_ARGS__)
LW_LIBPQ_FUNCTIONS(LW_DECLARE_PQ_REAL)
#undef LW_DECLARE_PQ_REAL
// libpq 17 and later; absent from older libraries (see UndefinedSymbol).
LW_DECLARE_OPTIONAL_REAL(g_libpq, PQclosePrepared)
LW_DECLARE_OPTIONAL_REAL(g_libpq, PQsendClosePrepared)

// "dbname=app user=app host=127.0.0.1 port=5432", the backend pid and
// whether the connect failed. Called only right after a connect, on the
// caller's thread.
Identity ReadIdentity(const PGconn* conn) {
  Identity identity;
  auto db = real_PQdb.Get();
  auto user = real_PQuser.Get();
  auto host = real_PQhost.Get();
  auto port = real_PQport.Get();
  auto pid = real_PQbackendPID.Get();
  auto status = real_PQstatus.Get();
  if (!db || !user || !host || !port || !pid || !status) return identity;
  auto str = [](const char* s) { return s != nullptr ? s : ""; };
  std::string text = std::string("dbname=") + str(db(conn)) +
                     " user=" + str(user(conn)) + " host=" + str(host(conn)) +
                     " port=" + str(port(conn));
  Tracker& tracker = Tracker::Get();
  identity.string_id = tracker.InternString(text);
  identity.detail = static_cast<uint32_t>(pid(conn));
  identity.connect_failed = status(conn) == CONNECTION_BAD;
  return identity;
}

// A connection from a connect that `completed` (successfully or not) inside
// the call, or that started here and completes in PQconnectPoll. Inlined
// into the hook, whose frame anchors the stack cache (as every acquisition in
// a hook is).
__attribute__((always_inline)) inline void OnConnect(PGconn* conn,
                                                     bool completed) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  if (completed) info.identity = ReadIdentity(conn);
  tracker.Acquire(&kPgConn, Key(conn), info);
}

void OnIdentityChange(PGconn* conn) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  tracker.SetIdentity(Key(conn), ReadIdentity(conn));
  tracker.Touch(Key(conn), nullptr);
}

// A call on a connection the tracker does not know: a use after close if
// it was closed recently (reported); else, in a `leakwatch attach` session,
// one acquired before the attach, adopted now (true).
bool OnUnknownConn(const PGconn* conn, const char* function) {
  Tracker& tracker = Tracker::Get();
  if (function != nullptr &&
      tracker.CheckUseMisuse(Key(conn), &kPgConn, function)) {
    return false;
  }
  if (!tracker.InSession()) return false;
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackId();
  info.identity = ReadIdentity(conn);
  return tracker.Adopt(&kPgConn, Key(conn), info);
}

// Before a call that blocks until the server answers: the connection is in
// use for as long as the query runs, however long that is.
// `function` names the call in a use-after-close report.
// (OnCallStart's and OnActivity's way for a connection the tracker does
// not know: out of line, errno kept.)
__attribute__((noinline)) void OnUnknownCallStart(const PGconn* conn,
                                                  const char* function) {
  ErrnoGuard errno_guard;
  if (OnUnknownConn(conn, function)) Tracker::Get().BeginCall(Key(conn));
}

__attribute__((noinline)) void OnUnknownActivity(const PGconn* conn,
                                                 uint32_t query,
                                                 const char* function) {
  ErrnoGuard errno_guard;
  if (OnUnknownConn(conn, function) && query != 0) {
    Tracker::Get().Touch(Key(conn), nullptr, nullptr, nullptr, query);
  }
}

// Inline, as the tracker's common case is, which leaves errno alone. Every
// call it begins ends within its hook, whose Touch after the real call ends
// it (Tracker::BeginCallInHook).
__attribute__((always_inline)) inline void OnCallStart(const PGconn* conn,
                                                       const char* function) {
  if (conn == nullptr) return;
  if (!Tracker::Get().BeginCallInHook(Key(conn))) [[unlikely]] {
    OnUnknownCallStart(conn, function);
  }
}

// Activity; `query` (0 = none) becomes the connection's last query.
// With `function`, a call on a closed connection is reported. Inline, as
// OnCallStart.
__attribute__((always_inline)) inline void OnActivity(
    const PGconn* conn, uint32_t query = 0, const char* function = nullptr) {
  if (conn == nullptr) return;
  Tracker& tracker = Tracker::Get();
  bool found = query != 0
                   ? tracker.Touch(Key(conn), nullptr, nullptr, nullptr, query)
                   : tracker.TouchActivity(Key(conn));
  if (!found && function != nullptr) [[unlikely]] {
    OnUnknownActivity(conn, query, function);
  }
}

// After PQconnectPoll or PQresetPoll: a connect that completed (either way)
// has a new identity; one still under way is activity.
void OnPoll(PGconn* conn, PostgresPollingStatusType status) {
  if (status == PGRES_POLLING_OK || status == PGRES_POLLING_FAILED) {
    OnIdentityChange(conn);
  } else {
    OnActivity(conn);
  }
}

// A result (or cancel handle) obtained on `conn`: the connection becomes
// active, and the new handle remembers which connection it came from.
// Inlined into the hook, whose frame anchors the stack cache. Returns what
// the handle was acquired with (a prepared statement made by the same call
// shares it).
__attribute__((always_inline)) inline AcquireInfo OnHandleFromConn(
    const KindDesc* kind, const void* handle, const PGconn* conn,
    uint32_t query = 0) {
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  if (handle == nullptr) {
    // Activity alone: the tracker's inline way, which leaves errno alone.
    info.query_id = query;
    if (conn != nullptr) {
      tracker.TouchAt(NowNs(), Key(conn), nullptr, nullptr, nullptr, query);
    }
    return info;
  }
  ErrnoGuard errno_guard;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  info.acquired_ns = NowNs();
  if (conn != nullptr) {
    info.parent = Key(conn);
    // The connection's last query (set here if this call sent one) is the
    // one the new handle came from.
    tracker.TouchAt(info.acquired_ns, Key(conn), &info.identity, nullptr,
                    &info.query_id, query);
  }
  if (info.query_id == 0) info.query_id = query;
  tracker.Acquire(kind, Key(handle), info);
  return info;
}

// --- prepared statements (pg.prepared) ---------------------------------------

// The key of the prepared statement `name` on `conn`: bit 63 set, which no
// user-space address has, and 63 bits of a hash of both (FNV-1a, mixed).
uintptr_t PreparedKey(const PGconn* conn, const char* name) {
  uint64_t h = 0xcbf29ce484222325ull ^ (Key(conn) * 0x9e3779b97f4a7c15ull);
  for (const char* p = name; *p != '\0'; ++p) {
    h = (h ^ static_cast<unsigned char>(*p)) * 0x100000001b3ull;
  }
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  constexpr uint64_t kTop = uint64_t{1} << 63;
  return static_cast<uintptr_t>(kTop | (h & (kTop - 1)));
}

// The unnamed statement ("" or null) is replaced by the next one: not kept.
bool IsNamed(const char* name) { return name != nullptr && name[0] != '\0'; }

// A prepare of `name` on `conn` that succeeded (PQprepare's result is
// PGRES_COMMAND_OK; PQsendPrepare queued it), acquired with `info` (the
// result's stack, connection, identity and query). The server refuses to
// prepare a name that exists, so a record still under this key is stale (a
// deallocation not seen): it is replaced.
void OnPrepared(const PGconn* conn, const char* name, AcquireInfo info) {
  if (conn == nullptr || !IsNamed(name)) return;
  ErrnoGuard errno_guard;
  info.parent = Key(conn);
  info.flags = 0;
  Tracker::Get().Acquire(&kPgPrepared, PreparedKey(conn, name), info);
}

// After PQprepare returned `result`, acquired as a pg.result with `info`.
void OnPrepareResult(const PGconn* conn, const char* name,
                     const PGresult* result, const AcquireInfo& info) {
  if (result == nullptr || !IsNamed(name)) return;
  ErrnoGuard errno_guard;
  auto status = real_PQresultStatus.Get();
  if (status != nullptr && status(result) == PGRES_COMMAND_OK) {
    OnPrepared(conn, name, info);
  }
}

// After PQsendPrepare returned `sent` (1: queued). Inlined into the hook,
// whose frame anchors the stack cache.
__attribute__((always_inline)) inline void OnSendPrepare(const PGconn* conn,
                                                         const char* name,
                                                         int sent) {
  if (sent != 1 || conn == nullptr || !IsNamed(name)) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  tracker.Touch(Key(conn), &info.identity, nullptr, &info.query_id);
  OnPrepared(conn, name, info);
}

// A prepared statement run or described by name: it is in use.
void OnPreparedUse(const PGconn* conn, const char* name) {
  if (conn == nullptr || !IsNamed(name)) return;
  ErrnoGuard errno_guard;
  Tracker::Get().TouchActivity(PreparedKey(conn, name));
}

// Every prepared statement of `conn` is gone (DEALLOCATE ALL, DISCARD ALL,
// a reset: a new session).
void OnAllPreparedGone(const PGconn* conn) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker::Get().ReleaseChildren(&kPgPrepared, Key(conn));
}

// Before `sql` is sent on `conn`: a DEALLOCATE (or DISCARD ALL) releases the
// statements it names, first, as releases do.
__attribute__((noinline)) void ParseDeallocateText(const PGconn* conn,
                                                   const char* sql);

void OnDeallocateText(const PGconn* conn, const char* sql) {
  if (conn != nullptr && sql != nullptr && MayDeallocate(sql)) {
    ParseDeallocateText(conn, sql);
  }
}

void ParseDeallocateText(const PGconn* conn, const char* sql) {
  char name[256];
  switch (ParseDeallocation(sql, name, sizeof name)) {
    case Deallocation::kOne: {
      ErrnoGuard errno_guard;
      Tracker::Get().Release(PreparedKey(conn, name));
      break;
    }
    case Deallocation::kAll:
      OnAllPreparedGone(conn);
      break;
    case Deallocation::kNone:
      break;
  }
}

// Before PQclosePrepared or PQsendClosePrepared of `name` on `conn`.
void OnClosePrepared(const PGconn* conn, const char* name) {
  if (conn == nullptr || !IsNamed(name)) return;
  ErrnoGuard errno_guard;
  Tracker::Get().Release(PreparedKey(conn, name));
}

// A hooked function of a newer libpq called where the loaded libpq lacks it.
// Without the agent, the program could not have called it: the dynamic
// linker would have stopped it at this call (lazy binding) with this
// message and status 127, or at start-up (immediate binding). The hook does
// what lazy binding does, so that the agent never makes a call succeed or
// fail in a way the library cannot. (A program that looks the name up with
// dlsym(RTLD_DEFAULT) to see whether it exists finds the hook, though: that
// much cannot be hidden.)
[[noreturn]] void UndefinedSymbol(const char* name) {
  const char* program =
      program_invocation_name != nullptr ? program_invocation_name : "?";
  char text[512];
  int n = snprintf(text, sizeof text,
                   "%s: symbol lookup error: %s: undefined symbol: %s\n",
                   program, program, name);
  if (n > 0) {
    ssize_t ignored = write(STDERR_FILENO, text,
                            std::min(static_cast<size_t>(n), sizeof text - 1));
    (void)ignored;
  }
  _exit(127);
}

}  // namespace
}  // namespace leakwatch

using leakwatch::g_libpq;
using leakwatch::kLibPg;

// The hooks of this file (see hook.h).
#define LW_PQ_HOOK(type, name, fail, params, args, before, after) \
  LW_HOOK(g_libpq, kLibPg, type, name, fail, params, args, before, after)

// --- connections -------------------------------------------------------------

// Connects: `completed` if the connect is done when the call returns.
#define LW_CONNECT_HOOK(name, params, args, completed)      \
  LW_PQ_HOOK(PGconn*, name, nullptr, params, args, (void)0, \
             leakwatch::OnConnect(result, completed))

LW_CONNECT_HOOK(PQconnectdb, (const char* conninfo), (conninfo), true)
LW_CONNECT_HOOK(PQconnectdbParams,
                (const char* const* keywords, const char* const* values,
                 int expand_dbname),
                (keywords, values, expand_dbname), true)
LW_CONNECT_HOOK(PQsetdbLogin,
                (const char* pghost, const char* pgport, const char* pgoptions,
                 const char* pgtty, const char* dbName, const char* login,
                 const char* pwd),
                (pghost, pgport, pgoptions, pgtty, dbName, login, pwd), true)
LW_CONNECT_HOOK(PQconnectStart, (const char* conninfo), (conninfo), false)
LW_CONNECT_HOOK(PQconnectStartParams,
                (const char* const* keywords, const char* const* values,
                 int expand_dbname),
                (keywords, values, expand_dbname), false)

// The steps of a non-blocking connect or reset.
#define LW_POLL_HOOK(name)                                          \
  LW_PQ_HOOK(PostgresPollingStatusType, name, PGRES_POLLING_FAILED, \
             (PGconn * conn), (conn), (void)0,                      \
             leakwatch::OnPoll(conn, result))

LW_POLL_HOOK(PQconnectPoll)
LW_POLL_HOOK(PQresetPoll)

// A reset is a new session: the old one's prepared statements are gone.
LW_PQ_HOOK(int, PQresetStart, 0, (PGconn * conn), (conn),
           leakwatch::OnAllPreparedGone(conn), leakwatch::OnActivity(conn))

LW_EXPORT void PQreset(PGconn* conn) {
  LW_HOOK_BEGIN(g_libpq, kLibPg, PQreset, );
  if (scope.record()) {
    leakwatch::OnAllPreparedGone(conn);
    leakwatch::OnCallStart(conn, "PQreset");
  }
  real(conn);
  if (scope.record()) leakwatch::OnIdentityChange(conn);
}

// Releases: void functions of the handle alone.
#define LW_PQ_RELEASE_HOOK(name, type, kind)                            \
  LW_RELEASE_HOOK(g_libpq, kLibPg, kind, void, name, , (type * handle), \
                  (handle), handle)

LW_PQ_RELEASE_HOOK(PQfinish, PGconn, &leakwatch::kPgConn)

// --- results -----------------------------------------------------------------

// Calls that block until the server answers and return a new result; `sql`
// (a query-depot id, 0 = none) is the query the call sends; `before` runs
// first (what the call does to prepared statements, or (void)0).
#define LW_RESULT_HOOK_WITH(name, params, args, sql, before)                  \
  LW_PQ_HOOK(PGresult*, name, nullptr, params, args,                          \
             ((before), leakwatch::OnCallStart(conn, #name)),                 \
             (void)leakwatch::OnHandleFromConn(&leakwatch::kPgResult, result, \
                                               conn, (sql)))
#define LW_RESULT_HOOK(name, params, args, sql) \
  LW_RESULT_HOOK_WITH(name, params, args, sql, (void)0)

// A DEALLOCATE sent as a query releases its statements first.
LW_RESULT_HOOK_WITH(PQexec, (PGconn * conn, const char* query), (conn, query),
                    leakwatch::QueryId(query, -1),
                    leakwatch::OnDeallocateText(conn, query))
LW_RESULT_HOOK_WITH(PQexecParams,
                    (PGconn * conn, const char* command, int nParams,
                     const Oid* paramTypes, const char* const* paramValues,
                     const int* paramLengths, const int* paramFormats,
                     int resultFormat),
                    (conn, command, nParams, paramTypes, paramValues,
                     paramLengths, paramFormats, resultFormat),
                    leakwatch::QueryId(command, -1),
                    leakwatch::OnDeallocateText(conn, command))
// A named statement prepared: a pg.result, and a pg.prepared if it succeeded.
LW_PQ_HOOK(PGresult*, PQprepare, nullptr,
           (PGconn * conn, const char* stmtName, const char* query, int nParams,
            const Oid* paramTypes),
           (conn, stmtName, query, nParams, paramTypes),
           leakwatch::OnCallStart(conn, "PQprepare"),
           leakwatch::OnPrepareResult(
               conn, stmtName, result,
               leakwatch::OnHandleFromConn(&leakwatch::kPgResult, result, conn,
                                           leakwatch::QueryId(query, -1))))
// A named statement run or described: in use.
LW_RESULT_HOOK_WITH(PQexecPrepared,
                    (PGconn * conn, const char* stmtName, int nParams,
                     const char* const* paramValues, const int* paramLengths,
                     const int* paramFormats, int resultFormat),
                    (conn, stmtName, nParams, paramValues, paramLengths,
                     paramFormats, resultFormat),
                    leakwatch::DescribedQueryId("EXECUTE ", stmtName),
                    leakwatch::OnPreparedUse(conn, stmtName))
LW_RESULT_HOOK_WITH(PQdescribePrepared, (PGconn * conn, const char* stmt),
                    (conn, stmt), 0, leakwatch::OnPreparedUse(conn, stmt))
LW_RESULT_HOOK(PQdescribePortal, (PGconn * conn, const char* portal),
               (conn, portal), 0)
LW_RESULT_HOOK(PQgetResult, (PGconn * conn), (conn), 0)
LW_RESULT_HOOK(PQfn,
               (PGconn * conn, int fnid, int* result_buf, int* result_len,
                int result_is_int, const PQArgBlock* args, int nargs),
               (conn, fnid, result_buf, result_len, result_is_int, args, nargs),
               0)

// Handles made without a call to the server, of `kind`; `conn` (null if
// none) is the connection the new handle belongs to.
#define LW_HANDLE_HOOK(type, name, kind, params, args, conn) \
  LW_PQ_HOOK(type*, name, nullptr, params, args, (void)0,    \
             leakwatch::OnHandleFromConn(kind, result, conn))

LW_HANDLE_HOOK(PGresult, PQmakeEmptyPGresult, &leakwatch::kPgResult,
               (PGconn * conn, ExecStatusType status), (conn, status), conn)
LW_HANDLE_HOOK(PGresult, PQcopyResult, &leakwatch::kPgResult,
               (const PGresult* src, int flags), (src, flags), nullptr)
LW_PQ_RELEASE_HOOK(PQclear, PGresult, &leakwatch::kPgResult)

// --- cancel handles ----------------------------------------------------------

LW_HANDLE_HOOK(PGcancel, PQgetCancel, &leakwatch::kPgCancel, (PGconn * conn),
               (conn), conn)
LW_PQ_RELEASE_HOOK(PQfreeCancel, PGcancel, &leakwatch::kPgCancel)

// --- closing prepared statements (libpq 17) ----------------------------------

// The statement goes first, as releases do; PQclosePrepared's result is a
// pg.result. Without the real function: see UndefinedSymbol.
LW_EXPORT PGresult* PQclosePrepared(PGconn* conn, const char* stmt) {
  auto real = leakwatch::real_PQclosePrepared.Get();
  if (real == nullptr) leakwatch::UndefinedSymbol("PQclosePrepared");
  leakwatch::HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) {
    leakwatch::OnClosePrepared(conn, stmt);
    leakwatch::OnCallStart(conn, "PQclosePrepared");
  }
  PGresult* result = real(conn, stmt);
  if (scope.record()) {
    leakwatch::OnHandleFromConn(&leakwatch::kPgResult, result, conn);
  }
  return result;
}

LW_EXPORT int PQsendClosePrepared(PGconn* conn, const char* stmt) {
  auto real = leakwatch::real_PQsendClosePrepared.Get();
  if (real == nullptr) leakwatch::UndefinedSymbol("PQsendClosePrepared");
  leakwatch::HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) {
    leakwatch::OnClosePrepared(conn, stmt);
    leakwatch::OnActivity(conn, 0, "PQsendClosePrepared");
  }
  return real(conn, stmt);
}

// --- activity on a connection (idle time) ------------------------------------

// Calls that send a query or make the connection active: int-returning, conn
// first; `fail` is what the library documents as the error return, `sql` the
// query-depot id of the query sent (0 = none). A call on a closed connection
// is reported.
#define LW_ACTIVITY_HOOK(name, fail, params, args, sql) \
  LW_PQ_HOOK(int, name, fail, params, args,             \
             leakwatch::OnActivity(conn, (sql), #name), (void)0)

// The same, with `before` run first (what the call does to prepared
// statements).
#define LW_ACTIVITY_HOOK_WITH(name, fail, params, args, sql, before) \
  LW_PQ_HOOK(int, name, fail, params, args,                          \
             ((before), leakwatch::OnActivity(conn, (sql), #name)), (void)0)

LW_ACTIVITY_HOOK_WITH(PQsendQuery, 0, (PGconn * conn, const char* query),
                      (conn, query), leakwatch::QueryId(query, -1),
                      leakwatch::OnDeallocateText(conn, query))
LW_ACTIVITY_HOOK_WITH(PQsendQueryParams, 0,
                      (PGconn * conn, const char* command, int nParams,
                       const Oid* paramTypes, const char* const* paramValues,
                       const int* paramLengths, const int* paramFormats,
                       int resultFormat),
                      (conn, command, nParams, paramTypes, paramValues,
                       paramLengths, paramFormats, resultFormat),
                      leakwatch::QueryId(command, -1),
                      leakwatch::OnDeallocateText(conn, command))
// Queued: a pg.prepared, from this call's stack.
LW_PQ_HOOK(int, PQsendPrepare, 0,
           (PGconn * conn, const char* stmtName, const char* query, int nParams,
            const Oid* paramTypes),
           (conn, stmtName, query, nParams, paramTypes),
           leakwatch::OnActivity(conn, leakwatch::QueryId(query, -1),
                                 "PQsendPrepare"),
           leakwatch::OnSendPrepare(conn, stmtName, result))
LW_ACTIVITY_HOOK_WITH(PQsendQueryPrepared, 0,
                      (PGconn * conn, const char* stmtName, int nParams,
                       const char* const* paramValues, const int* paramLengths,
                       const int* paramFormats, int resultFormat),
                      (conn, stmtName, nParams, paramValues, paramLengths,
                       paramFormats, resultFormat),
                      leakwatch::DescribedQueryId("EXECUTE ", stmtName),
                      leakwatch::OnPreparedUse(conn, stmtName))
LW_ACTIVITY_HOOK_WITH(PQsendDescribePrepared, 0,
                      (PGconn * conn, const char* stmt), (conn, stmt), 0,
                      leakwatch::OnPreparedUse(conn, stmt))
LW_ACTIVITY_HOOK(PQsendDescribePortal, 0, (PGconn * conn, const char* portal),
                 (conn, portal), 0)
LW_ACTIVITY_HOOK(PQconsumeInput, 0, (PGconn * conn), (conn), 0)
LW_ACTIVITY_HOOK(PQputCopyData, -1,
                 (PGconn * conn, const char* buffer, int nbytes),
                 (conn, buffer, nbytes), 0)
LW_ACTIVITY_HOOK(PQputCopyEnd, -1, (PGconn * conn, const char* errormsg),
                 (conn, errormsg), 0)
LW_ACTIVITY_HOOK(PQgetCopyData, -2, (PGconn * conn, char** buffer, int async),
                 (conn, buffer, async), 0)
LW_ACTIVITY_HOOK(PQpipelineSync, 0, (PGconn * conn), (conn), 0)
LW_ACTIVITY_HOOK(PQsendFlushRequest, 0, (PGconn * conn), (conn), 0)
