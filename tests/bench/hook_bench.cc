// What a hook costs on top of the real function, measured through the agent's
// exported hooks (dlopen'd libleakwatch.so) against the client library's own
// functions, called the same way (through a function pointer).
//
// Cases:
//   *_Null:   mysql_free_result(NULL) / PQclear(NULL): the real function
//             returns at once, so the difference is the hook's own cost on the
//             release path (resolution, nesting scope, library switch).
//   MysqlInitClose: mysql_init(NULL) + mysql_close(): a handle acquired and
//             released, with everything the tracker does (stack capture at
//             LEAKWATCH_STACK_DEPTH, table insert and erase).
//   ThreadCreateJoin: pthread_create of an empty thread + pthread_join, the
//             thread tracked from creation to join (with --leakwatch_track
//             including `thread`).
//
// The agent reads its options once, so the configuration is a flag:
//   hook_bench --leakwatch_track=pg        (mysql hooks disabled)
//   hook_bench --leakwatch_track=pg,mysql  (mysql hooks enabled)
// run_hook_bench.sh runs both and prints the ns per call of each hook next to
// the real function.
#include <dlfcn.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <benchmark/benchmark.h>

namespace {

using FreeResultFn = void (*)(MYSQL_RES*);
using InitFn = MYSQL* (*)(MYSQL*);
using CloseFn = void (*)(MYSQL*);
using ClearFn = void (*)(PGresult*);
using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*),
                         void*);
using JoinFn = int (*)(pthread_t, void**);

struct Functions {
  FreeResultFn free_result;
  InitFn init;
  CloseFn close;
  ClearFn clear;
  CreateFn create;
  JoinFn join;
};

Functions g_real, g_hook;

void* MustSym(void* handle, const char* name) {
  void* p = dlsym(handle, name);
  if (p == nullptr) {
    std::fprintf(stderr, "hook_bench: %s not found: %s\n", name, dlerror());
    std::exit(2);
  }
  return p;
}

Functions Load(void* handle) {
  return Functions{
      reinterpret_cast<FreeResultFn>(MustSym(handle, "mysql_free_result")),
      reinterpret_cast<InitFn>(MustSym(handle, "mysql_init")),
      reinterpret_cast<CloseFn>(MustSym(handle, "mysql_close")),
      reinterpret_cast<ClearFn>(MustSym(handle, "PQclear")),
      reinterpret_cast<CreateFn>(MustSym(handle, "pthread_create")),
      reinterpret_cast<JoinFn>(MustSym(handle, "pthread_join"))};
}

void BM_MysqlFreeResultNull(benchmark::State& state, const Functions* fns) {
  FreeResultFn fn = fns->free_result;
  for (auto _ : state) {
    MYSQL_RES* none = nullptr;
    benchmark::DoNotOptimize(none);
    fn(none);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PqClearNull(benchmark::State& state, const Functions* fns) {
  ClearFn fn = fns->clear;
  for (auto _ : state) {
    PGresult* none = nullptr;
    benchmark::DoNotOptimize(none);
    fn(none);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_MysqlInitClose(benchmark::State& state, const Functions* fns) {
  for (auto _ : state) {
    MYSQL* m = fns->init(nullptr);
    benchmark::DoNotOptimize(m);
    fns->close(m);
  }
  state.SetItemsProcessed(state.iterations());
}

void* Nothing(void*) { return nullptr; }

void BM_ThreadCreateJoin(benchmark::State& state, const Functions* fns) {
  for (auto _ : state) {
    pthread_t t;
    if (fns->create(&t, nullptr, &Nothing, nullptr) != 0) {
      state.SkipWithError("pthread_create failed");
      break;
    }
    fns->join(t, nullptr);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  const char* agent = LEAKWATCH_AGENT_PATH;
  for (int i = 1; i < argc; ++i) {
    const char kTrack[] = "--leakwatch_track=";
    if (std::strncmp(argv[i], kTrack, sizeof kTrack - 1) == 0) {
      setenv("LEAKWATCH_TRACK", argv[i] + sizeof kTrack - 1, 1);
      argv[i] = argv[--argc];
      --i;
    }
  }
  setenv("LEAKWATCH_THRESHOLD_MS", "0", 0);  // no watchdog thread
  // The real functions: the client libraries this binary links.
  g_real = Functions{&mysql_free_result, &mysql_init, &mysql_close,
                     &PQclear,           &pthread_create, &pthread_join};
  // The hooks: the agent, loaded privately so it does not replace the
  // binary's own bindings.
  void* handle = dlopen(agent, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "hook_bench: cannot load %s: %s\n", agent, dlerror());
    return 2;
  }
  g_hook = Load(handle);
  const char* track = getenv("LEAKWATCH_TRACK");
  std::string suffix = std::string("/track:") + (track ? track : "all");
  benchmark::RegisterBenchmark(("real/mysql_free_result(NULL)" + suffix).c_str(),
                               BM_MysqlFreeResultNull, &g_real);
  benchmark::RegisterBenchmark(("hook/mysql_free_result(NULL)" + suffix).c_str(),
                               BM_MysqlFreeResultNull, &g_hook);
  benchmark::RegisterBenchmark(("real/PQclear(NULL)" + suffix).c_str(),
                               BM_PqClearNull, &g_real);
  benchmark::RegisterBenchmark(("hook/PQclear(NULL)" + suffix).c_str(),
                               BM_PqClearNull, &g_hook);
  benchmark::RegisterBenchmark(("real/mysql_init+close" + suffix).c_str(),
                               BM_MysqlInitClose, &g_real);
  benchmark::RegisterBenchmark(("hook/mysql_init+close" + suffix).c_str(),
                               BM_MysqlInitClose, &g_hook);
  benchmark::RegisterBenchmark(("real/pthread_create+join" + suffix).c_str(),
                               BM_ThreadCreateJoin, &g_real)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("hook/pthread_create+join" + suffix).c_str(),
                               BM_ThreadCreateJoin, &g_hook)
      ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
