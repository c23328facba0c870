/* Misuse the agent must report before the real call (which may abort).
 * Usage: misuse MODE
 *   pg-double-clear     PQclear twice (glibc aborts on the second)
 *   pg-double-cancel    PQfreeCancel twice
 *   pg-use-after-finish PQexec on a finished connection
 *   pg-send-after-finish PQsendQuery on a finished connection
 *   my-double-free      mysql_free_result twice
 *   my-query-after-close mysql_query on a closed connection
 *   unknown             PQclear of a result the agent never saw (a result
 *                       made by libpq's own function, found in libpq's
 *                       symbol table on disk, past the hooks): counted
 *                       quietly, not reported
 * Each misuse is in a named function so the report's stacks can be checked.
 * The program prints "before" (flushed) just before the misuse. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "my_common.h"

/* The address of `name` in the loaded object `handle`, read from the object's
 * file (its .dynsym), where no lookup the agent answers can redirect it. */
static void* file_symbol(void* handle, const char* name) {
  struct link_map* map = NULL;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0) return NULL;
  int fd = open(map->l_name, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return NULL;
  const char* file = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (file == MAP_FAILED) return NULL;
  const Elf64_Ehdr* eh = (const Elf64_Ehdr*)file;
  const Elf64_Shdr* sh = (const Elf64_Shdr*)(file + eh->e_shoff);
  void* found = NULL;
  for (int i = 0; i < eh->e_shnum && found == NULL; ++i) {
    if (sh[i].sh_type != SHT_DYNSYM) continue;
    const Elf64_Sym* syms = (const Elf64_Sym*)(file + sh[i].sh_offset);
    const char* names = file + sh[sh[i].sh_link].sh_offset;
    size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
    for (size_t k = 0; k < count; ++k) {
      if (syms[k].st_shndx != SHN_UNDEF &&
          strcmp(names + syms[k].st_name, name) == 0) {
        found = (void*)(map->l_addr + syms[k].st_value);
        break;
      }
    }
  }
  munmap((void*)file, st.st_size);
  return found;
}

static void before(void) {
  printf("before\n");
  fflush(stdout);
}

__attribute__((noinline)) void finish_report(PGresult* res) { PQclear(res); }
__attribute__((noinline)) void close_session(PGconn* conn) { PQfinish(conn); }
__attribute__((noinline)) void drop_cancel(PGcancel* c) { PQfreeCancel(c); }
__attribute__((noinline)) void free_rows(MYSQL_RES* r) { mysql_free_result(r); }
__attribute__((noinline)) void close_mysql(MYSQL* m) { mysql_close(m); }

static PGconn* pg_connect(void) {
  PGconn* conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "connect: %s", PQerrorMessage(conn));
    exit(2);
  }
  return conn;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "pg-double-clear") == 0) {
    PGconn* conn = pg_connect();
    PGresult* res = PQexec(conn, "SELECT 1");
    finish_report(res);
    before();
    PQclear(res);
    PQfinish(conn);
  } else if (strcmp(mode, "pg-double-cancel") == 0) {
    PGconn* conn = pg_connect();
    PGcancel* cancel = PQgetCancel(conn);
    drop_cancel(cancel);
    before();
    PQfreeCancel(cancel);
    PQfinish(conn);
  } else if (strcmp(mode, "pg-use-after-finish") == 0) {
    PGconn* conn = pg_connect();
    close_session(conn);
    before();
    PQclear(PQexec(conn, "SELECT 1"));
  } else if (strcmp(mode, "pg-send-after-finish") == 0) {
    PGconn* conn = pg_connect();
    close_session(conn);
    before();
    PQsendQuery(conn, "SELECT 1");
  } else if (strcmp(mode, "my-double-free") == 0) {
    MYSQL* m = my_connect_or_die();
    mysql_query(m, "SELECT 1");
    MYSQL_RES* r = mysql_store_result(m);
    free_rows(r);
    before();
    mysql_free_result(r);
    mysql_close(m);
  } else if (strcmp(mode, "my-query-after-close") == 0) {
    MYSQL* m = my_connect_or_die();
    close_mysql(m);
    before();
    mysql_query(m, "SELECT 1");
  } else if (strcmp(mode, "unknown") == 0) {
    void* libpq = dlopen("libpq.so.5", RTLD_NOW | RTLD_NOLOAD);
    PGresult* (*make)(PGconn*, ExecStatusType) =
        (PGresult* (*)(PGconn*, ExecStatusType))file_symbol(
            libpq, "PQmakeEmptyPGresult");
    if (make == NULL) return 3;
    PGresult* res = make(NULL, PGRES_EMPTY_QUERY);
    before();
    PQclear(res);
    printf("after\n");
  } else {
    return 2;
  }
  return 0;
}
