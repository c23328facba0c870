/* Uses every hooked MySQL path and releases everything: the agent must say
 * nothing, and stdout, stderr and the exit code (7) must be the same as
 * without it. Handles, for LEAKWATCH_STATS: 3 mysql.conn (mysql_init(NULL),
 * mysql_init(&stack_struct), a failed connect), 10 mysql.result (store, use
 * read to the end, use freed half-way, 2 from a multi-statement query,
 * list_dbs, list_tables, list_fields, list_processes,
 * stmt_result_metadata), 1 mysql.stmt. */
#include "my_common.h"

static void die(MYSQL* mysql, const char* what) {
  fprintf(stderr, "%s: %s\n", what, mysql_error(mysql));
  exit(2);
}

static MYSQL_RES* checked(MYSQL* mysql, MYSQL_RES* res, const char* what) {
  if (res == NULL) die(mysql, what);
  return res;
}

static void buffered_and_unbuffered(MYSQL* conn) {
  my_exec_or_die(conn, "SELECT id, name FROM my_clean_items ORDER BY id");
  MYSQL_RES* res = checked(conn, mysql_store_result(conn), "store");
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) != NULL) printf("store %s=%s\n", row[0], row[1]);
  mysql_free_result(res);

  my_exec_or_die(conn, "SELECT seq FROM seq_1_to_100");
  res = checked(conn, mysql_use_result(conn), "use");
  long sum = 0;
  while ((row = mysql_fetch_row(res)) != NULL) sum += atol(row[0]);
  mysql_free_result(res);
  printf("use sum %ld\n", sum);

  /* Read one row, then free: mysql_free_result drains the rest, and the
   * connection is usable again. */
  my_exec_or_die(conn, "SELECT seq FROM seq_1_to_1000");
  res = checked(conn, mysql_use_result(conn), "use");
  row = mysql_fetch_row(res);
  printf("use first %s\n", row[0]);
  mysql_free_result(res);

  my_exec_or_die(conn, "SELECT 'a'; SELECT 'b'");
  do {
    res = checked(conn, mysql_store_result(conn), "multi");
    row = mysql_fetch_row(res);
    printf("multi %s\n", row[0]);
    mysql_free_result(res);
  } while (mysql_next_result(conn) == 0);
}

static void listings(MYSQL* conn) {
  MYSQL_RES* res = checked(conn, mysql_list_dbs(conn, my_db()), "list dbs");
  printf("dbs like %s: %llu\n", my_db(), (unsigned long long)mysql_num_rows(res));
  mysql_free_result(res);
  res = checked(conn, mysql_list_tables(conn, "my_clean_item%"), "list tables");
  printf("tables: %llu\n", (unsigned long long)mysql_num_rows(res));
  mysql_free_result(res);
  res = checked(conn, mysql_list_fields(conn, "my_clean_items", NULL),
                "list fields");
  printf("fields: %u\n", mysql_num_fields(res));
  mysql_free_result(res);
  res = checked(conn, mysql_list_processes(conn), "list processes");
  printf("processes listed: %s\n", mysql_num_rows(res) > 0 ? "yes" : "no");
  mysql_free_result(res);
}

static void prepared(MYSQL* conn) {
  MYSQL_STMT* stmt = mysql_stmt_init(conn);
  if (stmt == NULL) die(conn, "stmt init");
  const char* sql = "SELECT id, name FROM my_clean_items WHERE id > ? ORDER BY id";
  if (mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0) die(conn, "prepare");
  int min_id = 1;
  MYSQL_BIND param;
  memset(&param, 0, sizeof param);
  param.buffer_type = MYSQL_TYPE_LONG;
  param.buffer = &min_id;
  if (mysql_stmt_bind_param(stmt, &param) != 0 || mysql_stmt_execute(stmt) != 0) {
    fprintf(stderr, "execute: %s\n", mysql_stmt_error(stmt));
    exit(2);
  }
  MYSQL_RES* meta = mysql_stmt_result_metadata(stmt);
  if (meta == NULL) die(conn, "metadata");
  printf("stmt columns: %u (%s)\n", mysql_num_fields(meta),
         mysql_fetch_field_direct(meta, 1)->name);
  mysql_free_result(meta);
  int id = 0;
  char name[32];
  unsigned long name_len = 0;
  MYSQL_BIND out[2];
  memset(out, 0, sizeof out);
  out[0].buffer_type = MYSQL_TYPE_LONG;
  out[0].buffer = &id;
  out[1].buffer_type = MYSQL_TYPE_STRING;
  out[1].buffer = name;
  out[1].buffer_length = sizeof name;
  out[1].length = &name_len;
  mysql_stmt_bind_result(stmt, out);
  mysql_stmt_store_result(stmt);
  while (mysql_stmt_fetch(stmt) == 0) printf("stmt %d=%.*s\n", id, (int)name_len, name);
  mysql_stmt_free_result(stmt);
  mysql_stmt_close(stmt);
}

/* A connection in a caller's struct, closed; then a failed connect on a heap
 * handle, closed too. */
static void other_handles(void) {
  MYSQL m;
  mysql_init(&m);
  my_connect_handle_or_die(&m);
  my_exec_or_die(&m, "DO 1");
  mysql_close(&m);

  MYSQL* bad = mysql_init(NULL);
  unsigned int timeout = 2;
  mysql_options(bad, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  MYSQL* ok = mysql_real_connect(bad, "127.0.0.1", my_user(), my_password(),
                                 my_db(), 1, NULL, 0);
  printf("bad connect failed: %d\n", ok == NULL);
  mysql_close(bad);
}

int main(void) {
  MYSQL* conn = my_connect_or_die();
  my_exec_or_die(conn,
                 "CREATE TABLE IF NOT EXISTS my_clean_items "
                 "(id INT PRIMARY KEY, name VARCHAR(32))");
  my_exec_or_die(conn,
                 "REPLACE INTO my_clean_items VALUES "
                 "(1, 'one'), (2, 'two'), (3, 'three')");
  mysql_set_server_option(conn, MYSQL_OPTION_MULTI_STATEMENTS_ON);
  buffered_and_unbuffered(conn);
  listings(conn);
  prepared(conn);
  if (mysql_change_user(conn, my_user(), my_password(), my_db()) != 0) {
    die(conn, "change user");
  }
  my_exec_or_die(conn, "DO 1");
  printf("changed user\n");
  mysql_close(conn);
  other_handles();
  fprintf(stderr, "clean program's own stderr line\n");
  return 7;
}
