#include "tracker/thread_block.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

namespace leakwatch {
namespace thread_block_internal {

__attribute__((tls_model("initial-exec"))) __thread unsigned char* t_block =
    nullptr;

namespace {

pthread_key_t g_key;
bool g_key_ok = false;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

void Unmap(void* block) {
  if (t_block == block) t_block = nullptr;
  munmap(block, kThreadBlockBytes);
}

}  // namespace

unsigned char* MapBlock() {
  const int saved_errno = errno;  // callers on a hook's errno-free path
  pthread_once(&g_key_once,
               [] { g_key_ok = pthread_key_create(&g_key, &Unmap) == 0; });
  void* p = mmap(nullptr, kThreadBlockBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    // Without a key the block would outlive its thread: do without.
    if (!g_key_ok || pthread_setspecific(g_key, p) != 0) {
      munmap(p, kThreadBlockBytes);
    } else {
      t_block = static_cast<unsigned char*>(p);
    }
  }
  errno = saved_errno;
  return t_block;
}

}  // namespace thread_block_internal
}  // namespace leakwatch
