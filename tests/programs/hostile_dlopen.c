/* Loads libpq at run time, as Python, Perl or an Apache module loader do: the
 * program is not linked against libpq. (tests/integration/hostile_test.cc)
 *
 *   hostile_dlopen PLUGIN local
 *     dlopen(PLUGIN, RTLD_NOW | RTLD_LOCAL) (hostile_pgplugin.c, linked with
 *     -lpq) and calls its hostile_pgplugin_run(1): one connection finished,
 *     one result cleared, one result leaked.
 *   hostile_dlopen PLUGIN deepbind
 *     The same with RTLD_DEEPBIND: the plugin's libpq calls bind to libpq
 *     itself, past the hooks.
 *   hostile_dlopen - deepbind-libpq
 *     dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND), nothing
 *     else.
 *   hostile_dlopen PLUGIN reopen
 *     As `local`, then dlclose() the plugin (libpq goes with it), reserve
 *     the address range libpq had so that it cannot come back there, dlopen
 *     the plugin again and call it again (an Apache graceful restart
 *     reloading mod_php and its pgsql extension does this): two results
 *     leaked in all.
 *
 * Prints "libpq.so.5 loaded: yes|no" after the plugin is loaded (no for a
 * renamed copy of libpq with its own soname), "run: N" per call, and for
 * reopen "libpq unloaded: yes|no" and "libpq moved: yes|no". Exit status:
 * 0, or 3 if a dlopen/dlsym fails, or the plugin's failure status. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

typedef int (*RunFn)(int);

static void* open_or_die(const char* path, int flags) {
  void* handle = dlopen(path, flags);
  if (handle == NULL) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    exit(3);
  }
  return handle;
}

static int run_plugin(void* plugin) {
  RunFn run = (RunFn)dlsym(plugin, "hostile_pgplugin_run");
  if (run == NULL) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    exit(3);
  }
  int rc = run(1);
  printf("run: %d\n", rc);
  fflush(stdout);
  return rc;
}

/* Where libpq.so.5 is mapped now: [lo, hi), or 0 if it is not loaded. */
struct Range {
  uintptr_t base, lo, hi;
};

static int find_range(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  struct Range* r = data;
  if (info->dlpi_addr != r->base) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)4095;
    uintptr_t end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    if (r->lo == 0 || start < r->lo) r->lo = start;
    if (end > r->hi) r->hi = end;
  }
  return 1;
}

static struct Range libpq_range(void) {
  struct Range r = {0, 0, 0};
  void* handle = dlopen("libpq.so.5", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == NULL) return r;
  struct link_map* map = NULL;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != NULL) {
    r.base = map->l_addr;
    dl_iterate_phdr(find_range, &r);
  }
  dlclose(handle);
  return r;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr,
            "usage: hostile_dlopen PLUGIN local|deepbind|reopen | "
            "hostile_dlopen - deepbind-libpq|dlsym-libpq|next | "
            "hostile_dlopen MODULE deepbind-open\n");
    return 2;
  }
  const char* plugin_path = argv[1];
  const char* mode = argv[2];
  if (strcmp(mode, "deepbind-libpq") == 0) {
    open_or_die("libpq.so.5", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    printf("opened\n");
    return 0;
  }
  if (strcmp(mode, "deepbind-open") == 0) {
    open_or_die(plugin_path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    printf("opened\n");
    return 0;
  }
  if (strcmp(mode, "dlsym-libpq") == 0) {
    /* As psycopg 3's ctypes implementation: libpq loaded privately, every
     * function looked up on its handle and called through the pointer. */
    void* libpq = open_or_die("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    void* (*connectdb)(const char*) =
        (void* (*)(const char*))dlsym(libpq, "PQconnectdb");
    void (*finish)(void*) = (void (*)(void*))dlsym(libpq, "PQfinish");
    if (connectdb == NULL || finish == NULL) {
      fprintf(stderr, "lookup failed: %s\n", dlerror());
      return 1;
    }
    void* kept = connectdb("");
    void* closed = connectdb("");
    finish(closed);
    printf("connected: %s\n", kept != NULL ? "yes" : "no");
    return 0;
  }
  if (strcmp(mode, "next") == 0) {
    /* RTLD_NEXT is relative to the caller: from the program, the next
     * pthread_create is the first one in the global scope. */
    void* next = dlsym(RTLD_NEXT, "pthread_create");
    void* first = dlsym(RTLD_DEFAULT, "pthread_create");
    printf("next is first: %s\n", next == first ? "yes" : "no");
    /* A versioned lookup, and one on libc's own handle: the function the
     * program would call. */
    void* versioned = dlvsym(RTLD_DEFAULT, "pthread_create", "GLIBC_2.34");
    void* libc = open_or_die("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void* own = dlvsym(libc, "pthread_create", "GLIBC_2.34");
    printf("versioned is first: %s\n",
           versioned == first && own == first ? "yes" : "no");
    return 0;
  }
  int flags = RTLD_NOW | RTLD_LOCAL;
  if (strcmp(mode, "deepbind") == 0) flags |= RTLD_DEEPBIND;
  void* plugin = open_or_die(plugin_path, flags);
  printf("libpq.so.5 loaded: %s\n", libpq_range().base != 0 ? "yes" : "no");
  int rc = run_plugin(plugin);
  if (rc != 0 || strcmp(mode, "reopen") != 0) return rc;

  struct Range before = libpq_range();
  dlclose(plugin);
  struct Range gone = libpq_range();
  printf("libpq unloaded: %s\n", gone.base == 0 ? "yes" : "no");
  /* Keep libpq's old place taken, so that it is mapped elsewhere. */
  if (before.hi > before.lo &&
      mmap((void*)before.lo, before.hi - before.lo, PROT_NONE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
           0) == MAP_FAILED) {
    perror("mmap");
  }
  plugin = open_or_die(plugin_path, flags);
  struct Range after = libpq_range();
  printf("libpq moved: %s\n", after.base != before.base ? "yes" : "no");
  fflush(stdout);
  return run_plugin(plugin);
}
