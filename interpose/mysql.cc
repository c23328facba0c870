// Hooks for the MySQL/MariaDB client library (MariaDB Connector/C 3, also
// under Debian's libmysqlclient compatibility names).
//
// Handles: MYSQL (mysql.conn, from mysql_init — whether it allocates or
// initialises the caller's struct — to mysql_close), MYSQL_RES (mysql.result)
// and MYSQL_STMT (mysql.stmt). The non-blocking API (_start/_cont) is hooked
// too: an acquisition is recorded when the operation completes (the function
// returns 0 and the result is in *ret), a release when it starts. The _start
// functions run their blocking twins inside the library, on a coroutine stack;
// those inner calls come from the library itself and are passed through (see
// HookScope), so nothing is counted twice.
//
// A connection's identity is read here, on the calling thread: from the
// connect arguments and, where the library has it, mariadb_get_infov; the
// server's connection id is refreshed after queries (auto-reconnect changes
// it).
#include <mysql.h>

#include <cstdio>
#include <string>

#include "interpose/hook.h"
#include "interpose/kinds.h"
#include "interpose/real.h"
#include "interpose/sql.h"

namespace leakwatch {

const char* const kMysqlSonames[] = {"libmariadb.so.3",
                                     "libmysqlclient.so.21",
                                     "libmysqlclient.so.20",
                                     "libmysqlclient.so.18",
                                     "libmariadb.so",
                                     "libmysqlclient.so",
                                     nullptr};
ClientLibrary g_mysql{"libmariadb/libmysqlclient", kMysqlSonames};

namespace {

// clang-format off
#define LW_MYSQL_FUNCTIONS(X)                                                  \
  X(mysql_init) X(mysql_real_connect) X(mysql_real_connect_start)              \
  X(mysql_real_connect_cont) X(mysql_change_user) X(mysql_close)               \
  X(mysql_close_start) X(mysql_close_cont) X(mysql_store_result)               \
  X(mysql_store_result_start) X(mysql_store_result_cont) X(mysql_use_result)   \
  X(mysql_list_dbs) X(mysql_list_tables) X(mysql_list_fields)                  \
  X(mysql_list_fields_start) X(mysql_list_fields_cont) X(mysql_list_processes) \
  X(mysql_free_result) X(mysql_free_result_start) X(mysql_free_result_cont)    \
  X(mysql_stmt_init) X(mysql_stmt_close) X(mysql_stmt_close_start)             \
  X(mysql_stmt_close_cont) X(mysql_stmt_result_metadata) X(mysql_stmt_prepare) \
  X(mysql_stmt_execute) X(mysql_stmt_store_result) X(mysql_stmt_next_result)  \
  X(mysql_stmt_reset) X(mysql_stmt_send_long_data) X(mysql_stmt_fetch)         \
  X(mysql_query) X(mysql_real_query)                                           \
  X(mysql_send_query) X(mysql_read_query_result) X(mysql_next_result)          \
  X(mysql_query_start) X(mysql_query_cont) X(mysql_real_query_start)           \
  X(mysql_real_query_cont) X(mysql_ping) X(mysql_select_db) X(mysql_commit)    \
  X(mysql_rollback) X(mysql_autocommit) X(mysql_reset_connection)              \
  X(mysql_thread_id)
// clang-format on

#define LW_DECLARE_MYSQL_REAL(...) LW_DECLARE_REAL(g_mysql, __VA_ARGS__)
LW_MYSQL_FUNCTIONS(LW_DECLARE_MYSQL_REAL)
#undef LW_DECLARE_MYSQL_REAL
// MariaDB only; adds detail (the host, port and database actually used).
LW_DECLARE_OPTIONAL_REAL(g_mysql, mariadb_get_infov)

uint32_t ServerConnectionId(MYSQL* mysql) {
  auto thread_id = real_mysql_thread_id.Get();
  return thread_id != nullptr ? static_cast<uint32_t>(thread_id(mysql)) : 0;
}

enum class ConnectState { kConnected, kFailed, kPending };

// The state of a connect that completed and returned `connection` (null if
// it failed).
ConnectState CompletedState(const MYSQL* connection) {
  return connection != nullptr ? ConnectState::kConnected
                               : ConnectState::kFailed;
}

// What a connect call asked for (the identity's part of its arguments).
struct ConnectArgs {
  const char* host;
  const char* user;
  const char* db;
  unsigned int port;
  const char* unix_socket;
};

// "host=127.0.0.1 port=3306 user=app db=app": what the library reports for a
// live (`connected`) connection, else what the program asked for.
std::string IdentityText(MYSQL* mysql, bool connected,
                         const ConnectArgs& asked) {
  auto [host, user, db, port, unix_socket] = asked;
  auto get_info = real_mariadb_get_infov.Get();
  const char* info_host = nullptr;
  const char* info_user = nullptr;
  const char* info_db = nullptr;
  const char* info_socket = nullptr;
  unsigned int info_port = 0;
  if (connected && get_info != nullptr) {
    get_info(mysql, MARIADB_CONNECTION_HOST, &info_host);
    get_info(mysql, MARIADB_CONNECTION_USER, &info_user);
    get_info(mysql, MARIADB_CONNECTION_SCHEMA, &info_db);
    get_info(mysql, MARIADB_CONNECTION_UNIX_SOCKET, &info_socket);
    get_info(mysql, MARIADB_CONNECTION_PORT, &info_port);
  }
  auto pick = [](const char* a, const char* b) -> const char* {
    return a != nullptr && a[0] != '\0' ? a : b;
  };
  host = pick(info_host, host);
  user = pick(info_user, user);
  db = pick(info_db, db);
  unix_socket = pick(info_socket, unix_socket);
  if (info_port != 0) port = info_port;
  std::string text = std::string("host=") + (host ? host : "localhost");
  bool local = host == nullptr || std::string(host) == "localhost";
  if (local && unix_socket != nullptr) {
    text += std::string(" socket=") + unix_socket;
  } else if (port != 0) {
    text += " port=" + std::to_string(port);
  }
  text += std::string(" user=") + (user ? user : "");
  if (db != nullptr && db[0] != '\0') text += std::string(" db=") + db;
  return text;
}

// After a connect attempt completed (successfully or not), or started
// (non-blocking API: the arguments are known only then).
void OnConnected(MYSQL* mysql, ConnectState state, const ConnectArgs& asked) {
  if (mysql == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  bool connected = state == ConnectState::kConnected;
  Identity identity;
  identity.string_id =
      tracker.InternString(IdentityText(mysql, connected, asked));
  identity.detail = connected ? ServerConnectionId(mysql) : 0;
  identity.connect_failed = state == ConnectState::kFailed;
  tracker.SetIdentity(Key(mysql), identity);
  tracker.Touch(Key(mysql), nullptr);
}

// `text` ("host=h port=p user=u db=d") with the field `name` set to `value`:
// replaced where it is, added at the end if absent, removed if `value` is
// null or empty.
std::string WithField(const std::string& text, const std::string& name,
                      const char* value) {
  std::string wanted =
      value != nullptr && value[0] != '\0' ? name + "=" + value : "";
  std::string out;
  bool placed = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t space = text.find(' ', start);
    if (space == std::string::npos) space = text.size();
    std::string token = text.substr(start, space - start);
    if (token.rfind(name + "=", 0) == 0) {
      token = wanted;
      placed = true;
    }
    if (!token.empty()) out += (out.empty() ? "" : " ") + token;
    start = space + 1;
  }
  if (!placed && !wanted.empty()) out += (out.empty() ? "" : " ") + wanted;
  return out;
}

// After mysql_change_user or mysql_select_db succeeded: the user and/or the
// database changed, the host and port did not.
void OnSessionChange(MYSQL* mysql, const char* user, const char* db) {
  if (mysql == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  Identity identity;
  if (!tracker.Touch(Key(mysql), &identity)) return;
  Depot<char>::View old = tracker.strings().Get(identity.string_id);
  std::string text(old.data, old.size);
  if (user != nullptr) text = WithField(text, "user", user);
  text = WithField(text, "db", db);
  identity.string_id = tracker.InternString(text);
  uint32_t id = ServerConnectionId(mysql);
  if (id != 0) identity.detail = id;
  tracker.SetIdentity(Key(mysql), identity);
}

// Inlined into the hook, whose frame anchors the stack cache.
__attribute__((always_inline)) inline void OnAcquireConn(MYSQL* mysql) {
  if (mysql == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  tracker.Acquire(&kMysqlConn, Key(mysql), info);
}

// Before a blocking call; with `function`, a call on a closed connection is
// reported.
__attribute__((noinline)) void OnUnknownCallStart(const void* conn,
                                                  const char* function);

// Inline, as the tracker's common case is, which leaves errno alone.
// `in_hook`: the call ends within this hook, whose Touch after it ends it
// (Tracker::BeginCallInHook); a non-blocking call goes on after its hook.
__attribute__((always_inline)) inline void OnCallStart(
    const void* conn, const char* function = nullptr, bool in_hook = false) {
  if (conn == nullptr) return;
  Tracker& tracker = Tracker::Get();
  const bool tracked = in_hook ? tracker.BeginCallInHook(Key(conn))
                               : tracker.BeginCall(Key(conn));
  if (!tracked && function != nullptr) [[unlikely]] {
    OnUnknownCallStart(conn, function);
  }
}

// OnCallStart on a connection the tracker does not know.
void OnUnknownCallStart(const void* conn, const char* function) {
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  {
    if (tracker.CheckUseMisuse(Key(conn), &kMysqlConn, function) ||
        !tracker.InSession()) {
      return;
    }
    // In a `leakwatch attach` session: a connection acquired before the
    // attach, first seen in use now.
    AcquireInfo info;
    info.stack_id = tracker.CaptureStackId();
    MYSQL* mysql = static_cast<MYSQL*>(const_cast<void*>(conn));
    info.identity.string_id =
        tracker.InternString(IdentityText(mysql, true, ConnectArgs{}));
    info.identity.detail = ServerConnectionId(mysql);
    if (tracker.Adopt(&kMysqlConn, Key(conn), info)) {
      tracker.BeginCall(Key(conn));
    }
  }
}

// Activity on a connection; after a query, also notices a reconnect (the
// server's connection id changed) and refreshes the identity. `query` (0 =
// none) becomes the connection's last query.
// Errno is saved only where the identity changes: the rest leaves it alone.
void OnActivity(MYSQL* mysql, bool after_query, uint32_t query = 0) {
  if (mysql == nullptr) return;
  Tracker& tracker = Tracker::Get();
  if (!after_query) {
    tracker.Touch(Key(mysql), nullptr, nullptr, nullptr, query);
    return;
  }
  Identity identity;
  if (!tracker.Touch(Key(mysql), &identity, nullptr, nullptr, query)) return;
  uint32_t id = ServerConnectionId(mysql);
  if (id != 0 && identity.detail != 0 && id != identity.detail) {
    ErrnoGuard errno_guard;
    identity.detail = id;
    tracker.SetIdentity(Key(mysql), identity);
  }
}

// A result or statement obtained from `parent` (a connection or statement).
// Inlined into the hook, whose frame anchors the stack cache.
__attribute__((always_inline)) inline void OnHandleFromParent(
    const KindDesc* kind, const void* handle, const void* parent,
    uint16_t flags) {
  Tracker& tracker = Tracker::Get();
  if (handle == nullptr) {
    // Activity alone: the tracker's inline way, which leaves errno alone.
    if (parent != nullptr) tracker.Touch(Key(parent), nullptr);
    return;
  }
  ErrnoGuard errno_guard;
  AcquireInfo info;
  info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  info.flags = flags;
  info.acquired_ns = NowNs();
  if (parent != nullptr) {
    info.parent = Key(parent);
    // The parent's last query is the one the new handle came from.
    tracker.TouchAt(info.acquired_ns, Key(parent), &info.identity, nullptr,
                    &info.query_id, 0);
  }
  tracker.Acquire(kind, Key(handle), info);
}

// A statement call: the statement and its connection are active; a prepare
// gives both its query.
void OnStatementActivity(MYSQL_STMT* stmt, bool starting, uint32_t query = 0) {
  if (stmt == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  uintptr_t conn = 0;
  if (!tracker.Touch(Key(stmt), nullptr, &conn, nullptr, query) || conn == 0) {
    return;
  }
  if (starting) {
    tracker.BeginCall(conn);
  } else {
    tracker.Touch(conn, nullptr, nullptr, nullptr, query);
  }
}

// A row fetched from a statement: the statement is in use (many calls a
// millisecond: the cheap TouchActivity; the connection's activity was
// recorded by the execute).
void OnStatementFetch(MYSQL_STMT* stmt) {
  if (stmt == nullptr) return;
  Tracker::Get().TouchActivity(Key(stmt));
}

// After mysql_change_user or mysql_select_db: the session changed if `ok`.
void OnSessionCall(MYSQL* mysql, bool ok, const char* user, const char* db) {
  if (ok) {
    OnSessionChange(mysql, user, db);
  } else {
    OnActivity(mysql, false);
  }
}

// After mysql_real_connect_start: done at once, or pending; either way the
// identity is known from the arguments now (the _cont call does not have
// them).
void OnConnectStart(MYSQL* mysql, int status, MYSQL* const* ret,
                    const ConnectArgs& asked) {
  OnConnected(mysql,
              status != 0 ? ConnectState::kPending : CompletedState(*ret),
              asked);
  if (status != 0) OnCallStart(mysql);
}

// After mysql_real_connect_cont: once the connect completed (`status` 0), the
// identity set when it started gets the server's connection id, or is marked
// failed.
void OnConnectCont(MYSQL* mysql, int status, MYSQL* const* ret) {
  if (status != 0) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  Identity identity;
  if (!tracker.Touch(Key(mysql), &identity)) return;
  if (*ret != nullptr) {
    identity.detail = ServerConnectionId(mysql);
  } else {
    identity.connect_failed = true;
  }
  tracker.SetIdentity(Key(mysql), identity);
}

// After a non-blocking result call: the result once the call completed
// (`status` 0, the result in `*ret`); until then the connection is in use.
// Inlined into the hook, whose frame anchors the stack cache.
__attribute__((always_inline)) inline void OnAsyncResult(
    MYSQL* mysql, int status, MYSQL_RES* const* ret) {
  if (status == 0) {
    OnHandleFromParent(&kMysqlResult, *ret, mysql, 0);
  } else {
    OnCallStart(mysql);
  }
}

// After a non-blocking query call: `query` (a query-depot id, 0 = none)
// becomes the connection's last query; the connection is in use until the
// call completes (`status` 0).
void OnAsyncQuery(MYSQL* mysql, int status, uint32_t query) {
  if (query != 0) OnActivity(mysql, false, query);
  if (status == 0) {
    OnActivity(mysql, true);
  } else {
    OnCallStart(mysql);
  }
}

// What a non-blocking call returns when its real function is missing: done,
// with `value` (the documented failure) in `*ret`.
template <typename T>
int AsyncFailure(T* ret, std::type_identity_t<T> value) {
  *ret = value;
  return 0;
}

}  // namespace
}  // namespace leakwatch

using leakwatch::g_mysql;
using leakwatch::kLibMysql;

// The hooks of this file (see hook.h).
#define LW_MYSQL_HOOK(type, name, fail, params, args, before, after) \
  LW_HOOK(g_mysql, kLibMysql, type, name, fail, params, args, before, after)
// Blocking calls on the connection `mysql`: in use while they run (`after`
// touches the connection, which ends the call); `function` (null: none)
// names a call on a closed connection in a misuse report.
#define LW_BLOCKING_HOOK(type, name, fail, params, args, function, after) \
  LW_MYSQL_HOOK(type, name, fail, params, args,                           \
                leakwatch::OnCallStart(mysql, function, true), after)
// Non-blocking calls (_start/_cont), done when they return 0, with their
// result in *ret; `fail` is the *ret of a failure. `result` is the status.
#define LW_ASYNC_HOOK(name, fail, params, args, after)                       \
  LW_MYSQL_HOOK(int, name, leakwatch::AsyncFailure(ret, fail), params, args, \
                (void)0, after)
// Releases of `handle`, a `kind`.
#define LW_MYSQL_RELEASE_HOOK(type, name, kind, fail, params, args, handle) \
  LW_RELEASE_HOOK(g_mysql, kLibMysql, kind, type, name, fail, params, args, \
                  handle)
// The second half of a non-blocking release: recorded when it started.
#define LW_RELEASE_CONT_HOOK(name, fail, params, args) \
  LW_EXPORT int name params {                          \
    auto real = leakwatch::real_##name.Get();          \
    if (real == nullptr) return fail;                  \
    return real args;                                  \
  }

// --- connections -------------------------------------------------------------

LW_MYSQL_HOOK(MYSQL*, mysql_init, nullptr, (MYSQL * mysql), (mysql), (void)0,
              leakwatch::OnAcquireConn(result))
LW_BLOCKING_HOOK(MYSQL*, mysql_real_connect, nullptr,
                 (MYSQL * mysql, const char* host, const char* user,
                  const char* passwd, const char* db, unsigned int port,
                  const char* unix_socket, unsigned long clientflag),
                 (mysql, host, user, passwd, db, port, unix_socket, clientflag),
                 nullptr,
                 leakwatch::OnConnected(mysql,
                                        leakwatch::CompletedState(result),
                                        {host, user, db, port, unix_socket}))
LW_ASYNC_HOOK(mysql_real_connect_start, nullptr,
              (MYSQL * *ret, MYSQL* mysql, const char* host, const char* user,
               const char* passwd, const char* db, unsigned int port,
               const char* unix_socket, unsigned long client_flags),
              (ret, mysql, host, user, passwd, db, port, unix_socket,
               client_flags),
              leakwatch::OnConnectStart(mysql, result, ret,
                                        {host, user, db, port, unix_socket}))
LW_ASYNC_HOOK(mysql_real_connect_cont, nullptr,
              (MYSQL * *ret, MYSQL* mysql, int ready_status),
              (ret, mysql, ready_status),
              leakwatch::OnConnectCont(mysql, result, ret))
LW_BLOCKING_HOOK(my_bool, mysql_change_user, 1,
                 (MYSQL * mysql, const char* user, const char* passwd,
                  const char* db),
                 (mysql, user, passwd, db), nullptr,
                 leakwatch::OnSessionCall(mysql, !result, user, db))
LW_MYSQL_RELEASE_HOOK(void, mysql_close, &leakwatch::kMysqlConn, ,
                      (MYSQL * sock), (sock), sock)
LW_MYSQL_RELEASE_HOOK(int, mysql_close_start, &leakwatch::kMysqlConn, 0,
                      (MYSQL * sock), (sock), sock)
LW_RELEASE_CONT_HOOK(mysql_close_cont, 0, (MYSQL * sock, int ready_status),
                     (sock, ready_status))

// --- results -----------------------------------------------------------------

// Result-returning calls on a connection: blocking, then the new result.
#define LW_RESULT_HOOK(name, params, args, flags)                          \
  LW_BLOCKING_HOOK(MYSQL_RES*, name, nullptr, params, args, #name,         \
                   leakwatch::OnHandleFromParent(&leakwatch::kMysqlResult, \
                                                 result, mysql, flags))

LW_RESULT_HOOK(mysql_store_result, (MYSQL * mysql), (mysql), 0)
// An unbuffered result keeps its connection busy until it is freed.
LW_RESULT_HOOK(mysql_use_result, (MYSQL * mysql), (mysql),
               leakwatch::kPinsParent)
LW_RESULT_HOOK(mysql_list_dbs, (MYSQL * mysql, const char* wild), (mysql, wild),
               0)
LW_RESULT_HOOK(mysql_list_tables, (MYSQL * mysql, const char* wild),
               (mysql, wild), 0)
LW_RESULT_HOOK(mysql_list_fields,
               (MYSQL * mysql, const char* table, const char* wild),
               (mysql, table, wild), 0)
LW_RESULT_HOOK(mysql_list_processes, (MYSQL * mysql), (mysql), 0)

// Non-blocking result calls: the result exists once the call returns 0.
#define LW_ASYNC_RESULT_HOOK(name, params, args) \
  LW_ASYNC_HOOK(name, nullptr, params, args,     \
                leakwatch::OnAsyncResult(mysql, result, ret))

LW_ASYNC_RESULT_HOOK(mysql_store_result_start, (MYSQL_RES * *ret, MYSQL* mysql),
                     (ret, mysql))
LW_ASYNC_RESULT_HOOK(mysql_store_result_cont,
                     (MYSQL_RES * *ret, MYSQL* mysql, int ready_status),
                     (ret, mysql, ready_status))
LW_ASYNC_RESULT_HOOK(mysql_list_fields_start,
                     (MYSQL_RES * *ret, MYSQL* mysql, const char* table,
                      const char* wild),
                     (ret, mysql, table, wild))
LW_ASYNC_RESULT_HOOK(mysql_list_fields_cont,
                     (MYSQL_RES * *ret, MYSQL* mysql, int ready_status),
                     (ret, mysql, ready_status))

LW_MYSQL_RELEASE_HOOK(void, mysql_free_result, &leakwatch::kMysqlResult, ,
                      (MYSQL_RES * result), (result), result)
LW_MYSQL_RELEASE_HOOK(int, mysql_free_result_start, &leakwatch::kMysqlResult, 0,
                      (MYSQL_RES * result), (result), result)
LW_RELEASE_CONT_HOOK(mysql_free_result_cont, 0,
                     (MYSQL_RES * result, int ready_status),
                     (result, ready_status))

// --- statements --------------------------------------------------------------

LW_MYSQL_HOOK(MYSQL_STMT*, mysql_stmt_init, nullptr, (MYSQL * mysql), (mysql),
              (void)0,
              leakwatch::OnHandleFromParent(&leakwatch::kMysqlStmt, result,
                                            mysql, 0))
LW_MYSQL_RELEASE_HOOK(my_bool, mysql_stmt_close, &leakwatch::kMysqlStmt, 1,
                      (MYSQL_STMT * stmt), (stmt), stmt)
LW_MYSQL_RELEASE_HOOK(int, mysql_stmt_close_start, &leakwatch::kMysqlStmt,
                      leakwatch::AsyncFailure(ret, 1),
                      (my_bool * ret, MYSQL_STMT* stmt), (ret, stmt), stmt)
LW_RELEASE_CONT_HOOK(mysql_stmt_close_cont, leakwatch::AsyncFailure(ret, 1),
                     (my_bool * ret, MYSQL_STMT* stmt, int ready_status),
                     (ret, stmt, ready_status))
LW_MYSQL_HOOK(MYSQL_RES*, mysql_stmt_result_metadata, nullptr,
              (MYSQL_STMT * stmt), (stmt), (void)0,
              leakwatch::OnHandleFromParent(&leakwatch::kMysqlResult, result,
                                            stmt, 0))
// Statement calls: the statement and its connection are in use while they
// run; a prepare gives both its query.
LW_MYSQL_HOOK(int, mysql_stmt_prepare, 1,
              (MYSQL_STMT * stmt, const char* query, unsigned long length),
              (stmt, query, length), leakwatch::OnStatementActivity(stmt, true),
              leakwatch::OnStatementActivity(
                  stmt, false,
                  leakwatch::QueryId(query, static_cast<long>(length))))
// Calls that talk to the server about a statement: the statement is used
// (a cached one used again after a pause is reused, not leaked) and its
// connection is in use while they run.
#define LW_STMT_CALL_HOOK(type, name, params, args)         \
  LW_MYSQL_HOOK(type, name, 1, params, args,                \
                leakwatch::OnStatementActivity(stmt, true), \
                leakwatch::OnStatementActivity(stmt, false))

LW_STMT_CALL_HOOK(int, mysql_stmt_execute, (MYSQL_STMT * stmt), (stmt))
LW_STMT_CALL_HOOK(int, mysql_stmt_store_result, (MYSQL_STMT * stmt), (stmt))
LW_STMT_CALL_HOOK(int, mysql_stmt_next_result, (MYSQL_STMT * stmt), (stmt))
LW_STMT_CALL_HOOK(my_bool, mysql_stmt_reset, (MYSQL_STMT * stmt), (stmt))
LW_STMT_CALL_HOOK(my_bool, mysql_stmt_send_long_data,
                  (MYSQL_STMT * stmt, unsigned int param_number,
                   const char* data, unsigned long length),
                  (stmt, param_number, data, length))
LW_MYSQL_HOOK(int, mysql_stmt_fetch, 1, (MYSQL_STMT * stmt), (stmt), (void)0,
              leakwatch::OnStatementFetch(stmt))

// --- activity on a connection (idle time) ------------------------------------

// Blocking calls: in use while they run; `after_query` also checks for a
// reconnect; `sql` (a query-depot id, 0 = none) becomes the last query.
#define LW_CONN_CALL_HOOK(type, name, params, args, after_query, sql) \
  LW_BLOCKING_HOOK(type, name, 1, params, args, #name,                \
                   leakwatch::OnActivity(mysql, after_query, (sql)))

LW_CONN_CALL_HOOK(int, mysql_query, (MYSQL * mysql, const char* q), (mysql, q),
                  true, leakwatch::QueryId(q, -1))
LW_CONN_CALL_HOOK(int, mysql_real_query,
                  (MYSQL * mysql, const char* q, unsigned long length),
                  (mysql, q, length), true,
                  leakwatch::QueryId(q, static_cast<long>(length)))
LW_CONN_CALL_HOOK(int, mysql_send_query,
                  (MYSQL * mysql, const char* q, unsigned long length),
                  (mysql, q, length), true,
                  leakwatch::QueryId(q, static_cast<long>(length)))
LW_CONN_CALL_HOOK(my_bool, mysql_read_query_result, (MYSQL * mysql), (mysql),
                  false, 0)
LW_CONN_CALL_HOOK(int, mysql_next_result, (MYSQL * mysql), (mysql), false, 0)
LW_CONN_CALL_HOOK(int, mysql_ping, (MYSQL * mysql), (mysql), true, 0)
LW_BLOCKING_HOOK(int, mysql_select_db, 1, (MYSQL * mysql, const char* db),
                 (mysql, db), nullptr,
                 leakwatch::OnSessionCall(mysql, result == 0, nullptr, db))
LW_CONN_CALL_HOOK(my_bool, mysql_commit, (MYSQL * mysql), (mysql), false, 0)
LW_CONN_CALL_HOOK(my_bool, mysql_rollback, (MYSQL * mysql), (mysql), false, 0)
LW_CONN_CALL_HOOK(my_bool, mysql_autocommit, (MYSQL * mysql, my_bool mode),
                  (mysql, mode), false, 0)
LW_CONN_CALL_HOOK(int, mysql_reset_connection, (MYSQL * mysql), (mysql), false,
                  0)

// Non-blocking queries: in use from the start until the call completes.
#define LW_ASYNC_QUERY_HOOK(name, params, args, sql) \
  LW_ASYNC_HOOK(name, 1, params, args,               \
                leakwatch::OnAsyncQuery(mysql, result, (sql)))

LW_ASYNC_QUERY_HOOK(mysql_query_start, (int* ret, MYSQL* mysql, const char* q),
                    (ret, mysql, q), leakwatch::QueryId(q, -1))
LW_ASYNC_QUERY_HOOK(mysql_query_cont,
                    (int* ret, MYSQL* mysql, int ready_status),
                    (ret, mysql, ready_status), 0)
LW_ASYNC_QUERY_HOOK(mysql_real_query_start,
                    (int* ret, MYSQL* mysql, const char* q,
                     unsigned long length),
                    (ret, mysql, q, length),
                    leakwatch::QueryId(q, static_cast<long>(length)))
LW_ASYNC_QUERY_HOOK(mysql_real_query_cont,
                    (int* ret, MYSQL* mysql, int ready_status),
                    (ret, mysql, ready_status), 0)
