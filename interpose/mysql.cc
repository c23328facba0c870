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
// server's connection id is refreshed after queries (auto-reconnect changes it).
#include <mysql.h>

#include <cstdio>
#include <string>

#include "interpose/hook.h"
#include "interpose/kinds.h"
#include "interpose/real.h"
#include "interpose/sql.h"

namespace leakwatch {

const char* const kMysqlSonames[] = {
    "libmariadb.so.3",      "libmysqlclient.so.21", "libmysqlclient.so.20",
    "libmysqlclient.so.18", "libmariadb.so",        "libmysqlclient.so",
    nullptr};
ClientLibrary g_mysql{"libmariadb/libmysqlclient", kMysqlSonames};

namespace {

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
  X(mysql_stmt_execute) X(mysql_query) X(mysql_real_query)                     \
  X(mysql_send_query) X(mysql_read_query_result) X(mysql_next_result)          \
  X(mysql_query_start) X(mysql_query_cont) X(mysql_real_query_start)           \
  X(mysql_real_query_cont) X(mysql_ping) X(mysql_select_db) X(mysql_commit)    \
  X(mysql_rollback) X(mysql_autocommit) X(mysql_reset_connection)              \
  X(mysql_thread_id)

#define LW_DECLARE_REAL(name) \
  RealFunction<decltype(&::name)> real_##name(#name, &g_mysql);
LW_MYSQL_FUNCTIONS(LW_DECLARE_REAL)
#undef LW_DECLARE_REAL
// MariaDB only; adds detail (the host, port and database actually used).
RealFunction<decltype(&::mariadb_get_infov)> real_mariadb_get_infov(
    "mariadb_get_infov", &g_mysql, /*optional=*/true);

uintptr_t Key(const void* p) { return reinterpret_cast<uintptr_t>(p); }

uint32_t ServerConnectionId(MYSQL* mysql) {
  auto thread_id = real_mysql_thread_id.Get();
  return thread_id != nullptr ? static_cast<uint32_t>(thread_id(mysql)) : 0;
}

enum class ConnectState { kConnected, kFailed, kPending };

// "host=127.0.0.1 port=3306 user=app db=app": what the library reports for a
// live (`connected`) connection, else what the program asked for.
std::string IdentityText(MYSQL* mysql, bool connected, const char* host,
                         const char* user, const char* db, unsigned int port,
                         const char* unix_socket) {
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
void OnConnected(MYSQL* mysql, ConnectState state, const char* host,
                 const char* user, const char* db, unsigned int port,
                 const char* unix_socket) {
  if (mysql == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  bool connected = state == ConnectState::kConnected;
  Identity identity;
  identity.string_id = tracker.InternString(
      IdentityText(mysql, connected, host, user, db, port, unix_socket));
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
void OnCallStart(const void* conn, const char* function = nullptr) {
  if (conn == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  if (!tracker.BeginCall(Key(conn)) && function != nullptr) {
    tracker.CheckUseMisuse(Key(conn), &kMysqlConn, function);
  }
}

// Activity on a connection; after a query, also notices a reconnect (the
// server's connection id changed) and refreshes the identity. `query` (0 =
// none) becomes the connection's last query.
void OnActivity(MYSQL* mysql, bool after_query, uint32_t query = 0) {
  if (mysql == nullptr) return;
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  Identity identity;
  if (!tracker.Touch(Key(mysql), &identity, nullptr, nullptr, query) ||
      !after_query) {
    return;
  }
  uint32_t id = ServerConnectionId(mysql);
  if (id != 0 && identity.detail != 0 && id != identity.detail) {
    identity.detail = id;
    tracker.SetIdentity(Key(mysql), identity);
  }
}

// A result or statement obtained from `parent` (a connection or statement).
// Inlined into the hook, which captures the stack itself (see CaptureStack).
__attribute__((always_inline)) inline void OnHandleFromParent(
    const KindDesc* kind, const void* handle, const void* parent,
    uint16_t flags) {
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  AcquireInfo info;
  if (handle != nullptr) {
    info.stack_id = tracker.CaptureStackIdAt(LW_HOOK_ANCHOR());
  }
  info.flags = flags;
  if (parent != nullptr) {
    info.parent = Key(parent);
    // The parent's last query is the one the new handle came from.
    tracker.Touch(Key(parent), &info.identity, nullptr, &info.query_id);
  }
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

}  // namespace
}  // namespace leakwatch

using leakwatch::g_mysql;
using leakwatch::HookScope;
using leakwatch::kLibMysql;

#define LW_CALLER __builtin_return_address(0)
#define LW_SCOPE HookScope scope(g_mysql, kLibMysql, LW_CALLER)

// --- connections ---------------------------------------------------------------

LW_EXPORT MYSQL* mysql_init(MYSQL* mysql) {
  auto real = leakwatch::real_mysql_init.Get();
  if (real == nullptr) return nullptr;
  LW_SCOPE;
  MYSQL* ret = real(mysql);
  if (scope.record()) leakwatch::OnAcquireConn(ret);
  return ret;
}

LW_EXPORT MYSQL* mysql_real_connect(MYSQL* mysql, const char* host,
                                    const char* user, const char* passwd,
                                    const char* db, unsigned int port,
                                    const char* unix_socket,
                                    unsigned long clientflag) {
  auto real = leakwatch::real_mysql_real_connect.Get();
  if (real == nullptr) return nullptr;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnCallStart(mysql);
  MYSQL* ret =
      real(mysql, host, user, passwd, db, port, unix_socket, clientflag);
  if (scope.record()) {
    leakwatch::OnConnected(mysql,
                           ret != nullptr ? leakwatch::ConnectState::kConnected
                                          : leakwatch::ConnectState::kFailed,
                           host, user, db, port, unix_socket);
  }
  return ret;
}

LW_EXPORT int mysql_real_connect_start(MYSQL** ret, MYSQL* mysql,
                                       const char* host, const char* user,
                                       const char* passwd, const char* db,
                                       unsigned int port,
                                       const char* unix_socket,
                                       unsigned long client_flags) {
  auto real = leakwatch::real_mysql_real_connect_start.Get();
  if (real == nullptr) {
    *ret = nullptr;
    return 0;
  }
  LW_SCOPE;
  int status = real(ret, mysql, host, user, passwd, db, port, unix_socket,
                    client_flags);
  if (scope.record()) {
    // Done at once, or pending: either way the identity is known from the
    // arguments now (the _cont call does not have them).
    using leakwatch::ConnectState;
    ConnectState state = status != 0        ? ConnectState::kPending
                         : *ret != nullptr ? ConnectState::kConnected
                                           : ConnectState::kFailed;
    leakwatch::OnConnected(mysql, state, host, user, db, port, unix_socket);
    if (status != 0) leakwatch::OnCallStart(mysql);
  }
  return status;
}

LW_EXPORT int mysql_real_connect_cont(MYSQL** ret, MYSQL* mysql,
                                      int ready_status) {
  auto real = leakwatch::real_mysql_real_connect_cont.Get();
  if (real == nullptr) {
    *ret = nullptr;
    return 0;
  }
  LW_SCOPE;
  int status = real(ret, mysql, ready_status);
  if (scope.record() && status == 0) {
    leakwatch::ErrnoGuard errno_guard;
    leakwatch::Tracker& tracker = leakwatch::Tracker::Get();
    leakwatch::Identity identity;
    if (tracker.Touch(leakwatch::Key(mysql), &identity)) {
      if (*ret != nullptr) {
        identity.detail = leakwatch::ServerConnectionId(mysql);
      } else {
        identity.connect_failed = true;
      }
      tracker.SetIdentity(leakwatch::Key(mysql), identity);
    }
  }
  return status;
}

LW_EXPORT my_bool mysql_change_user(MYSQL* mysql, const char* user,
                                    const char* passwd, const char* db) {
  auto real = leakwatch::real_mysql_change_user.Get();
  if (real == nullptr) return 1;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnCallStart(mysql);
  my_bool failed = real(mysql, user, passwd, db);
  if (scope.record()) {
    if (!failed) {
      leakwatch::OnSessionChange(mysql, user, db);
    } else {
      leakwatch::OnActivity(mysql, false);
    }
  }
  return failed;
}

LW_EXPORT void mysql_close(MYSQL* sock) {
  auto real = leakwatch::real_mysql_close.Get();
  if (real == nullptr) return;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnRelease(sock, &leakwatch::kMysqlConn, "mysql_close", scope.caller());
  real(sock);
}

LW_EXPORT int mysql_close_start(MYSQL* sock) {
  auto real = leakwatch::real_mysql_close_start.Get();
  if (real == nullptr) return 0;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnRelease(sock, &leakwatch::kMysqlConn, "mysql_close_start", scope.caller());
  return real(sock);
}

LW_EXPORT int mysql_close_cont(MYSQL* sock, int ready_status) {
  auto real = leakwatch::real_mysql_close_cont.Get();
  if (real == nullptr) return 0;
  return real(sock, ready_status);  // released when the close started
}

// --- results -------------------------------------------------------------------

// Result-returning calls on a connection: blocking, then the new result.
#define LW_RESULT_HOOK(name, params, args, flags)                           \
  LW_EXPORT MYSQL_RES* name params {                                        \
    auto real = leakwatch::real_##name.Get();                               \
    if (real == nullptr) return nullptr;                                    \
    LW_SCOPE;                                                               \
    if (scope.record()) leakwatch::OnCallStart(mysql, #name);               \
    MYSQL_RES* res = real args;                                             \
    if (scope.record()) {                                                   \
      leakwatch::OnHandleFromParent(&leakwatch::kMysqlResult, res, mysql,   \
                                    flags);                                 \
    }                                                                       \
    return res;                                                             \
  }

LW_RESULT_HOOK(mysql_store_result, (MYSQL * mysql), (mysql), 0)
// An unbuffered result keeps its connection busy until it is freed.
LW_RESULT_HOOK(mysql_use_result, (MYSQL * mysql), (mysql),
               leakwatch::kPinsParent)
LW_RESULT_HOOK(mysql_list_dbs, (MYSQL * mysql, const char* wild),
               (mysql, wild), 0)
LW_RESULT_HOOK(mysql_list_tables, (MYSQL * mysql, const char* wild),
               (mysql, wild), 0)
LW_RESULT_HOOK(mysql_list_fields,
               (MYSQL * mysql, const char* table, const char* wild),
               (mysql, table, wild), 0)
LW_RESULT_HOOK(mysql_list_processes, (MYSQL * mysql), (mysql), 0)

// Non-blocking result calls: the result exists once the call returns 0.
#define LW_ASYNC_RESULT_HOOK(name, params, args)                            \
  LW_EXPORT int name params {                                               \
    auto real = leakwatch::real_##name.Get();                               \
    if (real == nullptr) {                                                  \
      *ret = nullptr;                                                       \
      return 0;                                                             \
    }                                                                       \
    LW_SCOPE;                                                               \
    int status = real args;                                                 \
    if (scope.record()) {                                                   \
      if (status == 0) {                                                    \
        leakwatch::OnHandleFromParent(&leakwatch::kMysqlResult, *ret,       \
                                      mysql, 0);                            \
      } else {                                                              \
        leakwatch::OnCallStart(mysql);                                      \
      }                                                                     \
    }                                                                       \
    return status;                                                          \
  }

LW_ASYNC_RESULT_HOOK(mysql_store_result_start,
                     (MYSQL_RES * *ret, MYSQL* mysql), (ret, mysql))
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

LW_EXPORT void mysql_free_result(MYSQL_RES* result) {
  auto real = leakwatch::real_mysql_free_result.Get();
  if (real == nullptr) return;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnRelease(result, &leakwatch::kMysqlResult, "mysql_free_result", scope.caller());
  real(result);
}

LW_EXPORT int mysql_free_result_start(MYSQL_RES* result) {
  auto real = leakwatch::real_mysql_free_result_start.Get();
  if (real == nullptr) return 0;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnRelease(result, &leakwatch::kMysqlResult, "mysql_free_result_start", scope.caller());
  return real(result);
}

LW_EXPORT int mysql_free_result_cont(MYSQL_RES* result, int ready_status) {
  auto real = leakwatch::real_mysql_free_result_cont.Get();
  if (real == nullptr) return 0;
  return real(result, ready_status);  // released when the free started
}

// --- statements ------------------------------------------------------------------

LW_EXPORT MYSQL_STMT* mysql_stmt_init(MYSQL* mysql) {
  auto real = leakwatch::real_mysql_stmt_init.Get();
  if (real == nullptr) return nullptr;
  LW_SCOPE;
  MYSQL_STMT* stmt = real(mysql);
  if (scope.record()) {
    leakwatch::OnHandleFromParent(&leakwatch::kMysqlStmt, stmt, mysql, 0);
  }
  return stmt;
}

LW_EXPORT my_bool mysql_stmt_close(MYSQL_STMT* stmt) {
  auto real = leakwatch::real_mysql_stmt_close.Get();
  if (real == nullptr) return 1;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnRelease(stmt, &leakwatch::kMysqlStmt, "mysql_stmt_close", scope.caller());
  return real(stmt);
}

LW_EXPORT int mysql_stmt_close_start(my_bool* ret, MYSQL_STMT* stmt) {
  auto real = leakwatch::real_mysql_stmt_close_start.Get();
  if (real == nullptr) {
    *ret = 1;
    return 0;
  }
  LW_SCOPE;
  if (scope.record()) leakwatch::OnRelease(stmt, &leakwatch::kMysqlStmt, "mysql_stmt_close_start", scope.caller());
  return real(ret, stmt);
}

LW_EXPORT int mysql_stmt_close_cont(my_bool* ret, MYSQL_STMT* stmt,
                                    int ready_status) {
  auto real = leakwatch::real_mysql_stmt_close_cont.Get();
  if (real == nullptr) {
    *ret = 1;
    return 0;
  }
  return real(ret, stmt, ready_status);  // released when the close started
}

LW_EXPORT MYSQL_RES* mysql_stmt_result_metadata(MYSQL_STMT* stmt) {
  auto real = leakwatch::real_mysql_stmt_result_metadata.Get();
  if (real == nullptr) return nullptr;
  LW_SCOPE;
  MYSQL_RES* res = real(stmt);
  if (scope.record()) {
    leakwatch::OnHandleFromParent(&leakwatch::kMysqlResult, res, stmt, 0);
  }
  return res;
}

LW_EXPORT int mysql_stmt_prepare(MYSQL_STMT* stmt, const char* query,
                                 unsigned long length) {
  auto real = leakwatch::real_mysql_stmt_prepare.Get();
  if (real == nullptr) return 1;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnStatementActivity(stmt, true);
  int ret = real(stmt, query, length);
  if (scope.record()) {
    leakwatch::OnStatementActivity(
        stmt, false, leakwatch::QueryId(query, static_cast<long>(length)));
  }
  return ret;
}

LW_EXPORT int mysql_stmt_execute(MYSQL_STMT* stmt) {
  auto real = leakwatch::real_mysql_stmt_execute.Get();
  if (real == nullptr) return 1;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnStatementActivity(stmt, true);
  int ret = real(stmt);
  if (scope.record()) leakwatch::OnStatementActivity(stmt, false);
  return ret;
}

// --- activity on a connection (idle time) ----------------------------------------

// Blocking calls: in use while they run; `after_query` also checks for a
// reconnect; `sql` (a query-depot id, 0 = none) becomes the last query.
#define LW_CONN_CALL_HOOK(ret_type, name, fail, params, args, after_query, \
                          sql)                                              \
  LW_EXPORT ret_type name params {                                          \
    auto real = leakwatch::real_##name.Get();                               \
    if (real == nullptr) return fail;                                       \
    LW_SCOPE;                                                               \
    if (scope.record()) leakwatch::OnCallStart(mysql, #name);               \
    ret_type ret = real args;                                               \
    if (scope.record()) leakwatch::OnActivity(mysql, after_query, (sql));   \
    return ret;                                                             \
  }

LW_CONN_CALL_HOOK(int, mysql_query, 1, (MYSQL * mysql, const char* q),
                  (mysql, q), true, leakwatch::QueryId(q, -1))
LW_CONN_CALL_HOOK(int, mysql_real_query, 1,
                  (MYSQL * mysql, const char* q, unsigned long length),
                  (mysql, q, length), true,
                  leakwatch::QueryId(q, static_cast<long>(length)))
LW_CONN_CALL_HOOK(int, mysql_send_query, 1,
                  (MYSQL * mysql, const char* q, unsigned long length),
                  (mysql, q, length), true,
                  leakwatch::QueryId(q, static_cast<long>(length)))
LW_CONN_CALL_HOOK(my_bool, mysql_read_query_result, 1, (MYSQL * mysql),
                  (mysql), false, 0)
LW_CONN_CALL_HOOK(int, mysql_next_result, 1, (MYSQL * mysql), (mysql), false, 0)
LW_CONN_CALL_HOOK(int, mysql_ping, 1, (MYSQL * mysql), (mysql), true, 0)
LW_EXPORT int mysql_select_db(MYSQL* mysql, const char* db) {
  auto real = leakwatch::real_mysql_select_db.Get();
  if (real == nullptr) return 1;
  LW_SCOPE;
  if (scope.record()) leakwatch::OnCallStart(mysql);
  int ret = real(mysql, db);
  if (scope.record()) {
    if (ret == 0) {
      leakwatch::OnSessionChange(mysql, nullptr, db);
    } else {
      leakwatch::OnActivity(mysql, false);
    }
  }
  return ret;
}
LW_CONN_CALL_HOOK(my_bool, mysql_commit, 1, (MYSQL * mysql), (mysql), false, 0)
LW_CONN_CALL_HOOK(my_bool, mysql_rollback, 1, (MYSQL * mysql), (mysql), false, 0)
LW_CONN_CALL_HOOK(my_bool, mysql_autocommit, 1, (MYSQL * mysql, my_bool mode),
                  (mysql, mode), false, 0)
LW_CONN_CALL_HOOK(int, mysql_reset_connection, 1, (MYSQL * mysql), (mysql),
                  false, 0)

// Non-blocking queries: in use from the start until the call completes.
#define LW_ASYNC_QUERY_HOOK(name, params, args, sql)                   \
  LW_EXPORT int name params {                                          \
    auto real = leakwatch::real_##name.Get();                          \
    if (real == nullptr) {                                             \
      *ret = 1;                                                        \
      return 0;                                                        \
    }                                                                  \
    LW_SCOPE;                                                          \
    int status = real args;                                            \
    if (scope.record()) {                                              \
      uint32_t query = (sql);                                          \
      if (query != 0) leakwatch::OnActivity(mysql, false, query);      \
      if (status == 0) {                                               \
        leakwatch::OnActivity(mysql, true);                            \
      } else {                                                         \
        leakwatch::OnCallStart(mysql);                                 \
      }                                                                \
    }                                                                  \
    return status;                                                     \
  }

LW_ASYNC_QUERY_HOOK(mysql_query_start,
                    (int* ret, MYSQL* mysql, const char* q), (ret, mysql, q),
                    leakwatch::QueryId(q, -1))
LW_ASYNC_QUERY_HOOK(mysql_query_cont, (int* ret, MYSQL* mysql, int ready_status),
                    (ret, mysql, ready_status), 0)
LW_ASYNC_QUERY_HOOK(mysql_real_query_start,
                    (int* ret, MYSQL* mysql, const char* q,
                     unsigned long length),
                    (ret, mysql, q, length),
                    leakwatch::QueryId(q, static_cast<long>(length)))
LW_ASYNC_QUERY_HOOK(mysql_real_query_cont,
                    (int* ret, MYSQL* mysql, int ready_status),
                    (ret, mysql, ready_status), 0)
