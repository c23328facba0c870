/* mysql_use_result read one row and then abandoned on an early return: the
 * unbuffered result keeps its connection busy, so the next query on that
 * connection fails with "Commands out of sync". A shard router keeps one
 * connection per shard (opened once, kept until exit and never closed); the
 * lookup on each shard streams the candidates and returns at the first one,
 * leaving the rest of the stream — and the result — behind.
 * Usage: my_use_result_abandon [shards [hold_ms]]   (default 50, 0): leaks
 * `shards` results, each pinning its own connection, and `shards`
 * connections; sleeps hold_ms before exiting. */
#include <time.h>

#include "my_common.h"

enum { kMaxShards = 100 };

__attribute__((noinline)) MYSQL* open_shard_connection(int shard) {
  (void)shard;
  return my_connect_or_die();
}

/* First id in the shard's range that matches; 0 if none. */
__attribute__((noinline)) long find_first_candidate(MYSQL* conn, int shard) {
  char sql[128];
  snprintf(sql, sizeof sql,
           "SELECT seq FROM seq_1_to_1000 WHERE seq %% 7 = %d", shard % 7);
  if (mysql_query(conn, sql) != 0) return -1;
  MYSQL_RES* res = mysql_use_result(conn);
  if (res == NULL) return -1;
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) != NULL) {
    long id = atol(row[0]);
    if (id > 0) return id; /* early return: res abandoned mid-stream */
  }
  mysql_free_result(res);
  return 0;
}

int main(int argc, char** argv) {
  int shards = argc > 1 ? atoi(argv[1]) : 50;
  if (shards < 1 || shards > kMaxShards) {
    fprintf(stderr, "shards must be 1..%d\n", kMaxShards);
    return 2;
  }
  MYSQL* conns[kMaxShards];
  for (int i = 0; i < shards; ++i) conns[i] = open_shard_connection(i);
  long sum = 0;
  for (int i = 0; i < shards; ++i) sum += find_first_candidate(conns[i], i);
  printf("candidates from %d shards, sum %ld\n", shards, sum);
  /* What users then see: the pinned connection refuses the next query. */
  if (mysql_query(conns[0], "SELECT 1") != 0) {
    printf("next query on shard 0: error %u\n", mysql_errno(conns[0]));
  } else {
    printf("next query on shard 0: ok\n");
  }
  fflush(stdout);
  long hold_ms = argc > 2 ? atol(argv[2]) : 0;
  struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 0; /* the connections are never closed either */
}
