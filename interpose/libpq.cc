// Hooks for libpq (PostgreSQL's client library).
//
// Handles: PGconn (pg.conn), PGresult (pg.result), PGcancel (pg.cancel).
// Every function of libpq 15 that creates or frees one of them is hooked, and
// so are the calls that make a connection active (for its idle time). A
// connection's identity is read here, on the calling thread, when a connect
// completes (PQconnectdb*, PQsetdbLogin, PQconnectPoll/PQresetPoll returning
// OK, PQreset) — never by the watchdog, which would race with PQfinish.
#include <libpq-fe.h>

#include <cstdio>
#include <string>

#include "interpose/hook.h"
#include "interpose/kinds.h"
#include "interpose/real.h"
#include "interpose/sql.h"

namespace leakwatch {

const char* const kLibpqSonames[] = {"libpq.so.5", "libpq.so", nullptr};
ClientLibrary g_libpq{"libpq", kLibpqSonames};

namespace {

// Real functions: the hooked ones and those we call to read identities.
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
  X(PQport) X(PQbackendPID) X(PQstatus)

#define LW_DECLARE_REAL(name) \
  RealFunction<decltype(&::name)> real_##name(#name, &g_libpq);
LW_LIBPQ_FUNCTIONS(LW_DECLARE_REAL)
#undef LW_DECLARE_REAL

uintptr_t Key(const void* p) { return reinterpret_cast<uintptr_t>(p); }

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

// A connect that completes (successfully or not) inside the call. Inlined
// into the hook, whose frame anchors the stack cache (as all acquisitions
// in hooks are: no hook then unwinds with unw_backtrace, whose per-thread
// cache is 256 KiB).
__attribute__((always_inline)) inline void OnConnect(PGconn* conn) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  info.identity = ReadIdentity(conn);
  tracker.Acquire(&kPgConn, Key(conn), info);
}

// A connect that starts here and completes in PQconnectPoll.
__attribute__((always_inline)) inline void OnConnectStart(PGconn* conn) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  tracker.Acquire(&kPgConn, Key(conn), info);
}

void OnIdentityChange(PGconn* conn) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  tracker.SetIdentity(Key(conn), ReadIdentity(conn));
  tracker.Touch(Key(conn), nullptr);
}

// Before a call that blocks until the server answers: the connection is in
// use for as long as the query runs, however long that is.
// `function` names the call in a use-after-close report.
void OnCallStart(const PGconn* conn, const char* function) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  if (!tracker.BeginCall(Key(conn))) {
    tracker.CheckUseMisuse(Key(conn), &kPgConn, function);
  }
}

// Activity; `query` (0 = none) becomes the connection's last query.
// With `function`, a call on a closed connection is reported.
void OnActivity(const PGconn* conn, uint32_t query = 0,
                const char* function = nullptr) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  bool found = query != 0
                   ? tracker.Touch(Key(conn), nullptr, nullptr, nullptr, query)
                   : tracker.TouchActivity(Key(conn));
  if (!found && function != nullptr) {
    tracker.CheckUseMisuse(Key(conn), &kPgConn, function);
  }
}

// A result (or cancel handle) obtained on `conn`: the connection becomes
// active, and the new handle remembers which connection it came from.
// Inlined into the hook, which captures the stack itself (see CaptureStack).
__attribute__((always_inline)) inline void OnHandleFromConn(
    const KindDesc* kind, const void* handle, const PGconn* conn,
    uint32_t query = 0) {
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  if (handle != nullptr) {
    info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  }
  if (conn != nullptr) {
    info.parent = Key(conn);
    // The connection's last query (set here if this call sent one) is the
    // one the new handle came from.
    tracker.Touch(Key(conn), &info.identity, nullptr, &info.query_id, query);
  }
  if (info.query_id == 0) info.query_id = query;
  if (handle != nullptr) tracker.Acquire(kind, Key(handle), info);
}

// A release; a second release of the same handle is reported (before the
// real call, which may abort the process).
void OnRelease(const void* handle, const KindDesc* kind, const char* function,
               const void* caller) {
  if (handle == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  if (!tracker.Release(Key(handle), tracker.CaptureReleaseStack(caller))) {
    tracker.CheckReleaseMisuse(Key(handle), kind, function);
  }
}

}  // namespace
}  // namespace leakwatch

using leakwatch::g_libpq;
using leakwatch::HookScope;
using leakwatch::kLibPg;

#define LW_CALLER __builtin_return_address(0)

// --- connections -------------------------------------------------------------

LW_EXPORT PGconn* PQconnectdb(const char* conninfo) {
  auto real = leakwatch::real_PQconnectdb.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGconn* conn = real(conninfo);
  if (scope.record()) leakwatch::OnConnect(conn);
  return conn;
}

LW_EXPORT PGconn* PQconnectdbParams(const char* const* keywords,
                                    const char* const* values,
                                    int expand_dbname) {
  auto real = leakwatch::real_PQconnectdbParams.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGconn* conn = real(keywords, values, expand_dbname);
  if (scope.record()) leakwatch::OnConnect(conn);
  return conn;
}

LW_EXPORT PGconn* PQsetdbLogin(const char* pghost, const char* pgport,
                               const char* pgoptions, const char* pgtty,
                               const char* dbName, const char* login,
                               const char* pwd) {
  auto real = leakwatch::real_PQsetdbLogin.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGconn* conn = real(pghost, pgport, pgoptions, pgtty, dbName, login, pwd);
  if (scope.record()) leakwatch::OnConnect(conn);
  return conn;
}

LW_EXPORT PGconn* PQconnectStart(const char* conninfo) {
  auto real = leakwatch::real_PQconnectStart.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGconn* conn = real(conninfo);
  if (scope.record()) leakwatch::OnConnectStart(conn);
  return conn;
}

LW_EXPORT PGconn* PQconnectStartParams(const char* const* keywords,
                                       const char* const* values,
                                       int expand_dbname) {
  auto real = leakwatch::real_PQconnectStartParams.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGconn* conn = real(keywords, values, expand_dbname);
  if (scope.record()) leakwatch::OnConnectStart(conn);
  return conn;
}

LW_EXPORT PostgresPollingStatusType PQconnectPoll(PGconn* conn) {
  auto real = leakwatch::real_PQconnectPoll.Get();
  if (real == nullptr) return PGRES_POLLING_FAILED;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PostgresPollingStatusType status = real(conn);
  if (scope.record()) {
    if (status == PGRES_POLLING_OK || status == PGRES_POLLING_FAILED) {
      leakwatch::OnIdentityChange(conn);
    } else {
      leakwatch::OnActivity(conn);
    }
  }
  return status;
}

LW_EXPORT int PQresetStart(PGconn* conn) {
  auto real = leakwatch::real_PQresetStart.Get();
  if (real == nullptr) return 0;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  int ok = real(conn);
  if (scope.record()) leakwatch::OnActivity(conn);
  return ok;
}

LW_EXPORT PostgresPollingStatusType PQresetPoll(PGconn* conn) {
  auto real = leakwatch::real_PQresetPoll.Get();
  if (real == nullptr) return PGRES_POLLING_FAILED;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PostgresPollingStatusType status = real(conn);
  if (scope.record()) {
    if (status == PGRES_POLLING_OK || status == PGRES_POLLING_FAILED) {
      leakwatch::OnIdentityChange(conn);
    } else {
      leakwatch::OnActivity(conn);
    }
  }
  return status;
}

LW_EXPORT void PQreset(PGconn* conn) {
  auto real = leakwatch::real_PQreset.Get();
  if (real == nullptr) return;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQreset");
  real(conn);
  if (scope.record()) leakwatch::OnIdentityChange(conn);
}

LW_EXPORT void PQfinish(PGconn* conn) {
  auto real = leakwatch::real_PQfinish.Get();
  if (real == nullptr) return;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnRelease(conn, &leakwatch::kPgConn, "PQfinish", scope.caller());
  real(conn);
}

// --- results -----------------------------------------------------------------

LW_EXPORT PGresult* PQexec(PGconn* conn, const char* query) {
  auto real = leakwatch::real_PQexec.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQexec");
  PGresult* res = real(conn, query);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn,
        leakwatch::QueryId(query, -1));
  return res;
}

LW_EXPORT PGresult* PQexecParams(PGconn* conn, const char* command, int nParams,
                                 const Oid* paramTypes,
                                 const char* const* paramValues,
                                 const int* paramLengths,
                                 const int* paramFormats, int resultFormat) {
  auto real = leakwatch::real_PQexecParams.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQexecParams");
  PGresult* res = real(conn, command, nParams, paramTypes, paramValues,
                       paramLengths, paramFormats, resultFormat);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn,
        leakwatch::QueryId(command, -1));
  return res;
}

LW_EXPORT PGresult* PQprepare(PGconn* conn, const char* stmtName,
                              const char* query, int nParams,
                              const Oid* paramTypes) {
  auto real = leakwatch::real_PQprepare.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQprepare");
  PGresult* res = real(conn, stmtName, query, nParams, paramTypes);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn,
        leakwatch::QueryId(query, -1));
  return res;
}

LW_EXPORT PGresult* PQexecPrepared(PGconn* conn, const char* stmtName,
                                   int nParams, const char* const* paramValues,
                                   const int* paramLengths,
                                   const int* paramFormats, int resultFormat) {
  auto real = leakwatch::real_PQexecPrepared.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQexecPrepared");
  PGresult* res = real(conn, stmtName, nParams, paramValues, paramLengths,
                       paramFormats, resultFormat);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn,
        leakwatch::DescribedQueryId("EXECUTE ", stmtName));
  return res;
}

LW_EXPORT PGresult* PQdescribePrepared(PGconn* conn, const char* stmt) {
  auto real = leakwatch::real_PQdescribePrepared.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQdescribePrepared");
  PGresult* res = real(conn, stmt);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn);
  return res;
}

LW_EXPORT PGresult* PQdescribePortal(PGconn* conn, const char* portal) {
  auto real = leakwatch::real_PQdescribePortal.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQdescribePortal");
  PGresult* res = real(conn, portal);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn);
  return res;
}

LW_EXPORT PGresult* PQgetResult(PGconn* conn) {
  auto real = leakwatch::real_PQgetResult.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQgetResult");
  PGresult* res = real(conn);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn);
  return res;
}

LW_EXPORT PGresult* PQmakeEmptyPGresult(PGconn* conn, ExecStatusType status) {
  auto real = leakwatch::real_PQmakeEmptyPGresult.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGresult* res = real(conn, status);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn);
  return res;
}

LW_EXPORT PGresult* PQcopyResult(const PGresult* src, int flags) {
  auto real = leakwatch::real_PQcopyResult.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGresult* res = real(src, flags);
  if (scope.record()) {
    leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, nullptr);
  }
  return res;
}

LW_EXPORT PGresult* PQfn(PGconn* conn, int fnid, int* result_buf,
                         int* result_len, int result_is_int,
                         const PQArgBlock* args, int nargs) {
  auto real = leakwatch::real_PQfn.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnCallStart(conn, "PQfn");
  PGresult* res =
      real(conn, fnid, result_buf, result_len, result_is_int, args, nargs);
  if (scope.record()) leakwatch::OnHandleFromConn(&leakwatch::kPgResult, res, conn);
  return res;
}

LW_EXPORT void PQclear(PGresult* res) {
  auto real = leakwatch::real_PQclear.Get();
  if (real == nullptr) return;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnRelease(res, &leakwatch::kPgResult, "PQclear", scope.caller());
  real(res);
}

// --- cancel handles ------------------------------------------------------------

LW_EXPORT PGcancel* PQgetCancel(PGconn* conn) {
  auto real = leakwatch::real_PQgetCancel.Get();
  if (real == nullptr) return nullptr;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  PGcancel* cancel = real(conn);
  if (scope.record()) {
    leakwatch::OnHandleFromConn(&leakwatch::kPgCancel, cancel, conn);
  }
  return cancel;
}

LW_EXPORT void PQfreeCancel(PGcancel* cancel) {
  auto real = leakwatch::real_PQfreeCancel.Get();
  if (real == nullptr) return;
  HookScope scope(g_libpq, kLibPg, LW_CALLER);
  if (scope.record()) leakwatch::OnRelease(cancel, &leakwatch::kPgCancel, "PQfreeCancel", scope.caller());
  real(cancel);
}

// --- activity on a connection (idle time) -------------------------------------

// Hooks that only mark the connection active: int-returning, conn first;
// `fail` is what the library documents as the error return.
#define LW_ACTIVITY_HOOK(name, fail, params, args)       \
  LW_QUERY_HOOK(name, fail, params, args, 0)
// The same for calls that send a query: `query` is its query-depot id.
#define LW_QUERY_HOOK(name, fail, params, args, query)         \
  LW_EXPORT int name params {                                  \
    auto real = leakwatch::real_##name.Get();                  \
    if (real == nullptr) return fail;                          \
    HookScope scope(g_libpq, kLibPg, LW_CALLER);               \
    if (scope.record()) {                                      \
      leakwatch::OnActivity(conn, (query), #name);             \
    }                                                          \
    return real args;                                          \
  }

LW_QUERY_HOOK(PQsendQuery, 0, (PGconn * conn, const char* query),
              (conn, query), leakwatch::QueryId(query, -1))
LW_QUERY_HOOK(PQsendQueryParams, 0,
                 (PGconn * conn, const char* command, int nParams,
                  const Oid* paramTypes, const char* const* paramValues,
                  const int* paramLengths, const int* paramFormats,
                  int resultFormat),
                 (conn, command, nParams, paramTypes, paramValues,
                  paramLengths, paramFormats, resultFormat),
              leakwatch::QueryId(command, -1))
LW_QUERY_HOOK(PQsendPrepare, 0,
                 (PGconn * conn, const char* stmtName, const char* query,
                  int nParams, const Oid* paramTypes),
                 (conn, stmtName, query, nParams, paramTypes),
              leakwatch::QueryId(query, -1))
LW_QUERY_HOOK(PQsendQueryPrepared, 0,
                 (PGconn * conn, const char* stmtName, int nParams,
                  const char* const* paramValues, const int* paramLengths,
                  const int* paramFormats, int resultFormat),
                 (conn, stmtName, nParams, paramValues, paramLengths,
                  paramFormats, resultFormat),
              leakwatch::DescribedQueryId("EXECUTE ", stmtName))
LW_ACTIVITY_HOOK(PQsendDescribePrepared, 0, (PGconn * conn, const char* stmt),
                 (conn, stmt))
LW_ACTIVITY_HOOK(PQsendDescribePortal, 0, (PGconn * conn, const char* portal),
                 (conn, portal))
LW_ACTIVITY_HOOK(PQconsumeInput, 0, (PGconn * conn), (conn))
LW_ACTIVITY_HOOK(PQputCopyData, -1,
                 (PGconn * conn, const char* buffer, int nbytes),
                 (conn, buffer, nbytes))
LW_ACTIVITY_HOOK(PQputCopyEnd, -1, (PGconn * conn, const char* errormsg),
                 (conn, errormsg))
LW_ACTIVITY_HOOK(PQgetCopyData, -2, (PGconn * conn, char** buffer, int async),
                 (conn, buffer, async))
LW_ACTIVITY_HOOK(PQpipelineSync, 0, (PGconn * conn), (conn))
LW_ACTIVITY_HOOK(PQsendFlushRequest, 0, (PGconn * conn), (conn))
