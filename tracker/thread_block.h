// A per-thread block of scratch memory for the hooks' caches (the stack cache
// in the tracker, the masked-query cache in interpose/sql.cc), mapped on a
// thread's first use and unmapped when the thread exits.
//
// Not in static TLS: the agent may be loaded with dlopen (the hook benchmark
// does, and a program may), and glibc then has only a small surplus of static
// TLS for initial-exec variables — kilobytes of caches there made that dlopen
// fail with "cannot allocate memory in static TLS block".
//
// Memory: only the pages a thread writes are resident. A thread that makes no
// recorded call maps nothing; one that does (any part of the first page: the
// stack, release-site and query caches) has one page; the second page (the
// script frame cache) only with script stacks.
//
// Thread safety: each thread has its own block. Hook-safe: mmap, no malloc.
#ifndef LEAKWATCH_TRACKER_THREAD_BLOCK_H_
#define LEAKWATCH_TRACKER_THREAD_BLOCK_H_

#include <atomic>
#include <cstddef>

namespace leakwatch {

inline constexpr size_t kThreadBlockBytes = 8192;
// Where each user's part of the block starts.
inline constexpr size_t kStackCacheOffset = 0;
inline constexpr size_t kStackCacheBytes = 1920;
inline constexpr size_t kReleaseSiteCacheOffset = 1920;
inline constexpr size_t kReleaseSiteCacheBytes = 128;
inline constexpr size_t kQueryCacheOffset = 2048;
inline constexpr size_t kQueryCacheBytes = 2048;
inline constexpr size_t kScriptFrameCacheOffset = 4096;
inline constexpr size_t kScriptFrameCacheBytes = 4096;

// An entry of the release-site cache (Tracker::CaptureReleaseStack with
// LEAKWATCH_RELEASE_STACK_DEPTH=1): a call site and its stack-depot id.
struct ReleaseSiteEntry {
  uintptr_t site;  // 0 = empty
  uint32_t id;
};
inline constexpr size_t kReleaseSites =
    kReleaseSiteCacheBytes / sizeof(ReleaseSiteEntry);

// The release-site cache's entry for `site` in `block`.
inline ReleaseSiteEntry& ReleaseSiteFor(unsigned char* block, uintptr_t site) {
  auto* sites =
      reinterpret_cast<ReleaseSiteEntry*>(block + kReleaseSiteCacheOffset);
  return sites[(site ^ (site >> 9)) % kReleaseSites];
}

namespace thread_block_internal {
extern
    __attribute__((tls_model("initial-exec"))) __thread unsigned char* t_block;
unsigned char* MapBlock();
}  // namespace thread_block_internal

// The calling thread's block (zeroed when mapped), or null if it could not
// be mapped.
inline unsigned char* ThreadBlock() {
  unsigned char* block = thread_block_internal::t_block;
  return block != nullptr ? block : thread_block_internal::MapBlock();
}

// Rewrites a cache entry in the block with `fill`, so that a hook in a
// signal handler on this thread sees it empty or whole: `tag` (the entry's
// key; 0 = empty) is cleared first and set to `value` last.
template <typename Tag, typename Fill>
void RewriteCacheEntry(Tag& tag, Tag value, Fill&& fill) {
  tag = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fill();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tag = value;
}

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_THREAD_BLOCK_H_
