#include "tracker/reach.h"

#include <dirent.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "tracker/mapped_vector.h"
#include "tracker/stack.h"

namespace leakwatch {
namespace {

// Everything below that runs in the tracer or in the snapshot uses system
// calls and memory of its own only: the host's threads are stopped (or, in
// the snapshot, frozen) wherever they were, possibly holding malloc's or
// stdio's locks.

constexpr size_t kPage = 4096;
constexpr size_t kRedZone = 128;  // below the stack pointer (x86-64 ABI)
// glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's heaps are this aligned.
constexpr uintptr_t kArenaHeapAlign = uintptr_t{64} << 20;
constexpr size_t kTracerStack = 256 * 1024;

int64_t MonoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct ThreadRegs {
  pid_t tid;
  struct user_regs_struct regs;
};

// Shared by the watchdog, the tracer and the snapshot (MAP_SHARED). The
// arrays follow the header in the same mapping.
struct Shared {
  // Set by the watchdog.
  pid_t pid;
  pid_t skip_tid;  // the watchdog itself: waiting, its stack excluded
  int pipe_write;
  uintptr_t tcache_key;  // what glibc writes into a block its tcache holds
  bool glibc_layout;     // malloc's arena layout is the one known here
  size_t key_count;
  size_t exclude_count;
  size_t thread_capacity;
  const uintptr_t* keys;
  Reach* verdicts;
  const MemoryRange* exclude;
  ThreadRegs* threads;
  // Set by the tracer.
  std::atomic<uint32_t> thread_count;
  std::atomic<int64_t> pause_ns;
  std::atomic<pid_t> child;
  const char* failure;
  // Set by the snapshot.
  std::atomic<bool> done;
  int64_t scan_ns;
  uint64_t root_bytes;
  uint64_t heap_bytes;
  uint64_t reached_bytes;
  uint64_t snapshot_max_rss_kb;  // set by the tracer
};

// --- memory of the snapshot's own --------------------------------------------

// Bump allocation from fresh mappings; never freed (the snapshot exits).
void* Map(size_t bytes) {
  bytes = (bytes + kPage - 1) & ~(kPage - 1);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// --- the process's mappings
// ---------------------------------------------------

struct Mapping {
  uintptr_t begin, end;
  uintptr_t live_begin;  // a thread stack's live part begins here (else begin)
  bool scannable;        // readable, writable, private, not a special one
  bool main_heap;        // "[heap]"
  bool anonymous;        // no file
  bool libc;  // a mapping of libc.so.6 (malloc's main arena is there)
};

int OpenFile(const char* path) {
  return static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
}

// Reads a whole /proc file into a mapping of its own; its size in *size.
char* ReadWholeFile(const char* path, size_t* size) {
  int fd = OpenFile(path);
  if (fd < 0) return nullptr;
  size_t capacity = 1 << 20;
  char* buf = static_cast<char*>(Map(capacity));
  size_t used = 0;
  while (buf != nullptr) {
    if (used + kPage > capacity) {
      char* bigger = static_cast<char*>(Map(capacity * 2));
      if (bigger != nullptr) std::memcpy(bigger, buf, used);
      munmap(buf, capacity);
      buf = bigger;
      capacity *= 2;
      continue;
    }
    long n = syscall(SYS_read, fd, buf + used, capacity - used - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  syscall(SYS_close, fd);
  if (buf != nullptr) buf[used] = '\0';
  *size = used;
  return buf;
}

uintptr_t ParseHex(const char** p) {
  uintptr_t v = 0;
  for (;; ++*p) {
    char c = **p;
    if (c >= '0' && c <= '9') {
      v = v * 16 + static_cast<uintptr_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = v * 16 + static_cast<uintptr_t>(c - 'a' + 10);
    } else {
      return v;
    }
  }
}

bool EndsWith(const char* s, const char* end, const char* suffix) {
  size_t n = std::strlen(suffix);
  return static_cast<size_t>(end - s) >= n &&
         std::memcmp(end - n, suffix, n) == 0;
}

// /proc/self/maps, one Mapping per line; the buffer the text was read into
// is left out.
bool ReadMaps(MappedVector<Mapping>* out) {
  size_t size = 0;
  char* text = ReadWholeFile("/proc/self/maps", &size);
  if (text == nullptr) return false;
  uintptr_t text_begin = reinterpret_cast<uintptr_t>(text);
  for (const char* p = text; *p != '\0';) {
    const char* eol = std::strchr(p, '\n');
    if (eol == nullptr) eol = p + std::strlen(p);
    Mapping m{};
    m.begin = ParseHex(&p);
    ++p;  // '-'
    m.end = ParseHex(&p);
    m.live_begin = m.begin;
    ++p;  // ' '
    bool readable = p[0] == 'r', writable = p[1] == 'w', shared = p[3] == 's';
    // Skip offset, device and inode to the path (if any).
    const char* q = p + 4;
    for (int field = 0; field < 3 && q < eol; ++field) {
      while (q < eol && *q == ' ') ++q;
      while (q < eol && *q != ' ') ++q;
    }
    while (q < eol && *q == ' ') ++q;
    const char* path = q;
    m.anonymous = path == eol;
    m.main_heap = EndsWith(path, eol, "[heap]") && path[0] == '[';
    bool special = path < eol && path[0] == '[' && !m.main_heap &&
                   !EndsWith(path, eol, "[stack]") &&
                   std::strncmp(path, "[anon:", 6) != 0;
    bool device = std::strncmp(path, "/dev/", 5) == 0;
    m.libc = EndsWith(path, eol, "/libc.so.6");
    bool own = m.begin <= text_begin && text_begin < m.end;
    m.scannable = readable && writable && !shared && !special && !device &&
                  !own && m.end > m.begin;
    if (!out->push_back(m)) return false;
    p = *eol == '\n' ? eol + 1 : eol;
  }
  return true;
}

// --- glibc's heaps
// ------------------------------------------------------------

// A region of glibc heap. `cover` is memory that belongs to it (never a root:
// its chunks are reached one by one); its chunks lie in [begin, end). Either
// many chunks, the in-use ones marked in `starts` (one bit per 16 bytes from
// `begin`), with one bitmap per mark; or one large block of its own mapping.
struct Heap {
  uintptr_t cover_begin, cover_end;
  uintptr_t begin, end;
  bool mmapped;
  uint64_t* starts;
  uint64_t* marks[2];   // by Mark
  bool block_marks[2];  // mmapped: its one chunk's marks
};

// Marks of a chunk: reached from the roots, or visited from a lost handle.
enum Mark { kReached = 0, kIndirect = 1 };

constexpr uintptr_t kPrevInUse = 1;
constexpr uintptr_t kIsMmapped = 2;
constexpr uintptr_t kSizeMask = ~uintptr_t{7};
constexpr uintptr_t kMinChunk = 32;
// glibc's smallest mmap threshold (128 KiB): a block of its own mapping is
// larger.
constexpr uintptr_t kMinMmappedChunk = 128 * 1024;

uintptr_t Word(uintptr_t address) {
  return *reinterpret_cast<const uintptr_t*>(address);
}
uintptr_t ChunkSize(uintptr_t chunk) { return Word(chunk + 8) & kSizeMask; }

bool TestBit(const uint64_t* bits, size_t i) {
  return (bits[i / 64] >> (i % 64)) & 1;
}
void SetBit(uint64_t* bits, size_t i) {
  bits[i / 64] |= uint64_t{1} << (i % 64);
}
void ClearBit(uint64_t* bits, size_t i) {
  bits[i / 64] &= ~(uint64_t{1} << (i % 64));
}

// Walks the chunks of a heap from `first` on; true if they chain exactly to
// `end` (the top chunk, or a thread heap's fenceposts, last). With `heap`,
// marks the chunks in use, except those malloc's tcache holds.
bool WalkChunks(uintptr_t first, uintptr_t end, Heap* heap,
                uintptr_t tcache_key, uint64_t* bytes) {
  uintptr_t c = first;
  while (c + 16 <= end) {
    uintptr_t size = ChunkSize(c);
    // A thread heap retired for a new one ends in fenceposts: a chunk of 16
    // bytes then one of 0, within the heap's last few words.
    if (size == 16 && end - c <= kMinChunk + 32) break;
    if (size < kMinChunk || (size & 15) != 0 || size > end - c) return false;
    if (c + size == end) break;  // the top chunk: free
    bool in_use = (Word(c + size + 8) & kPrevInUse) != 0;
    // A block in the tcache carries the tcache's key in its second word.
    if (in_use && tcache_key != 0 && size <= 1040 &&
        Word(c + 24) == tcache_key) {
      in_use = false;
    }
    if (in_use && heap != nullptr) SetBit(heap->starts, (c - heap->begin) / 16);
    c += size;
  }
  if (c + 16 > end && c != end) return false;
  if (bytes != nullptr) *bytes += end - first;
  return true;
}

// The first chunk of a heap that begins within `probe` bytes of `begin`:
// the first 16-aligned address from which the chunks chain to `end`.
uintptr_t FindFirstChunk(uintptr_t begin, uintptr_t end, size_t probe) {
  for (uintptr_t c = (begin + 15) & ~uintptr_t{15};
       c < begin + probe && c + kMinChunk <= end; c += 16) {
    if (WalkChunks(c, end, nullptr, 0, nullptr)) return c;
  }
  return 0;
}

// A large block malloc gave a mapping of its own, at `c` (a page boundary,
// below `limit`): prev_size 0, a size with IS_MMAPPED of whole pages. 0 if
// `c` is not one; else its size.
uintptr_t MmappedChunkAt(uintptr_t c, uintptr_t limit) {
  if (c % kPage != 0 || c + kPage > limit) return 0;
  uintptr_t size_word = Word(c + 8);
  uintptr_t size = size_word & kSizeMask;
  if (Word(c) != 0 || (size_word & 7) != kIsMmapped ||
      size < kMinMmappedChunk || size % kPage != 0 || size > limit - c) {
    return 0;
  }
  return size;
}

// --- the scan
// -------------------------------------------------------------------

class Snapshot {
 public:
  explicit Snapshot(Shared* shared) : s_(shared) {}

  bool Run() {
    if (!ReadMaps(&maps_)) return Fail("cannot read /proc/self/maps");
    pagemap_ = OpenFile("/proc/self/pagemap");
    FindHeaps();
    ClearFastbins();
    ScanRoots();
    Flood(kReached);
    Judge();
    return true;
  }

 private:
  bool Fail(const char* why) {
    s_->failure = why;
    return false;
  }

  bool Excluded(uintptr_t begin, uintptr_t end) const {
    for (size_t i = 0; i < s_->exclude_count; ++i) {
      if (begin < s_->exclude[i].end && s_->exclude[i].begin < end) return true;
    }
    return false;
  }

  // Finds glibc's heaps in the mappings: the main heap ([heap], chunks up to
  // the program break), thread arenas' heaps (at 64 MiB boundaries, their
  // size in their header) and large blocks of their own mappings. The kernel
  // merges adjacent anonymous mappings into one entry, so each is looked for
  // inside the entries. A heap's chunks must chain exactly, or it is not one
  // (and its memory is scanned as a root: a miss at worst, never a false
  // "lost").
  void FindHeaps() {
    uintptr_t brk = static_cast<uintptr_t>(syscall(SYS_brk, 0));
    for (const Mapping& m : maps_) {
      if (!m.scannable) continue;
      if (m.main_heap && brk > m.begin && brk <= m.end) {
        uintptr_t first = FindFirstChunk(m.begin, brk, kPage);
        if (first != 0) AddHeap(m.begin, brk, first, brk, false);
        continue;
      }
      if (!m.anonymous || !s_->glibc_layout) continue;
      // Every page that holds data may begin a heap or a large block.
      for (uintptr_t p = m.begin; p < m.end;) {
        uintptr_t next = Present(p) ? FindHeapAt(p, m.end) : 0;
        p = next != 0 ? next : p + kPage;
      }
    }
    std::sort(heaps_.begin(), heaps_.end(),
              [](const Heap& a, const Heap& b) { return a.begin < b.begin; });
    if (!heaps_.empty()) {
      heap_lo_ = heaps_[0].begin;
      heap_hi_ = heaps_[heaps_.size() - 1].end;
    }
  }

  // True unless the page at `p` was never touched (pagemap, read 512 pages
  // at a time; true when pagemap cannot be read).
  bool Present(uintptr_t p) {
    uintptr_t page = p / kPage;
    if (page < present_first_ || page >= present_first_ + 512) {
      present_first_ = page;
      if (pagemap_ < 0 ||
          syscall(SYS_pread64, pagemap_, present_, sizeof present_, page * 8) !=
              static_cast<long>(sizeof present_)) {
        std::fill(present_, present_ + 512, uint64_t{1} << 63);
      }
    }
    return (present_[page - present_first_] >> 62) != 0;
  }

  // A heap starting at `p` (a thread arena's, or a run of large blocks);
  // returns where what it found ends, or 0.
  uintptr_t FindHeapAt(uintptr_t p, uintptr_t limit) {
    if (Excluded(p, p + kPage)) return 0;
    if (p % kArenaHeapAlign == 0) {
      uintptr_t size = Word(p + 16);  // heap_info.size
      if (size >= kPage && size <= limit - p && size <= kArenaHeapAlign) {
        uintptr_t first = FindFirstChunk(p + 32, p + size, kPage);
        if (first != 0 && AddHeap(p, p + size, first, p + size, false)) {
          return p + size;
        }
      }
    }
    uintptr_t size = MmappedChunkAt(p, limit);
    if (size == 0 || Excluded(p, p + size)) return 0;
    return AddHeap(p, p + size, p, p + size, true) ? p + size : 0;
  }

  bool AddHeap(uintptr_t cover_begin, uintptr_t cover_end, uintptr_t first,
               uintptr_t end, bool mmapped) {
    Heap h{};
    h.cover_begin = cover_begin;
    h.cover_end = cover_end;
    h.begin = first;
    h.end = end;
    h.mmapped = mmapped;
    s_->heap_bytes += end - first;
    if (!mmapped) {
      size_t bytes = (((end - first) / 16 + 63) / 64) * 8;
      h.starts = static_cast<uint64_t*>(Map(bytes));
      h.marks[kReached] = static_cast<uint64_t*>(Map(bytes));
      h.marks[kIndirect] = static_cast<uint64_t*>(Map(bytes));
      if (h.starts == nullptr || h.marks[kReached] == nullptr ||
          h.marks[kIndirect] == nullptr) {
        return false;
      }
      WalkChunks(first, end, &h, s_->tcache_key, nullptr);
    }
    return heaps_.push_back(h);
  }

  // Blocks in malloc's fastbins look in use (their neighbour's PREV_INUSE
  // stays set): unmark them. Each arena's fastbin heads are found from its
  // `top`, the last chunk of its current heap.
  void ClearFastbins() {
    if (!s_->glibc_layout) return;
    for (Heap& h : heaps_) {
      if (h.mmapped) continue;
      uintptr_t top = LastChunk(h);
      if (top == 0) continue;
      // A thread arena's state follows its first heap's header; the main
      // arena lives in libc's data.
      uintptr_t arena = 0;
      if (h.cover_begin % kArenaHeapAlign == 0 && h.cover_begin != h.begin &&
          Word(Word(h.cover_begin) + kArenaTop) == top) {
        arena = Word(h.cover_begin);
      } else {
        arena = FindMainArena(top);
        // malloc's own bookkeeping in libc's data (bins, last_remainder)
        // keeps stale pointers to chunks now in use: never a root.
        if (arena != 0) main_arena_ = arena;
      }
      if (arena != 0) ClearFastbinsOf(arena);
    }
  }

  // malloc_state (glibc 2.27 to 2.40): mutex, flags, have_fastchunks, then
  // fastbinsY[10] at 16 and top at 96.
  static constexpr uintptr_t kArenaFastbins = 16;
  static constexpr int kFastbins = 10;
  static constexpr uintptr_t kArenaTop = 96;
  // sizeof(struct malloc_state) on x86-64 (glibc 2.27 to 2.40).
  static constexpr uintptr_t kArenaSize = 2200;

  static uintptr_t LastChunk(const Heap& h) {
    uintptr_t c = h.begin, last = 0;
    while (c + 16 <= h.end) {
      uintptr_t size = ChunkSize(c);
      if (size < 16 || size > h.end - c) break;
      last = c;
      c += size;
    }
    return last;
  }

  uintptr_t FindMainArena(uintptr_t top) const {
    for (const Mapping& m : maps_) {
      if (!m.libc || !m.scannable) continue;
      for (uintptr_t p = m.begin + kArenaTop; p + 8 <= m.end; p += 8) {
        if (Word(p) == top) return p - kArenaTop;
      }
    }
    return 0;
  }

  void ClearFastbinsOf(uintptr_t arena) {
    for (int i = 0; i < kFastbins; ++i) {
      uintptr_t c = Word(arena + kArenaFastbins + 8 * i);
      for (int steps = 0; c != 0 && steps < 1000000; ++steps) {
        Heap* h = HeapOf(c);
        if (h == nullptr || h->mmapped || (c & 15) != 0) break;
        ClearBit(h->starts, (c - h->begin) / 16);
        uintptr_t fd = Word(c + 16);
        c = ((c + 16) >> 12) ^ fd;  // glibc's safe-linking
      }
    }
  }

  // The heap whose chunks hold `p`, or null.
  Heap* HeapOf(uintptr_t p) {
    if (p < heap_lo_ || p >= heap_hi_ || heaps_.empty()) return nullptr;
    size_t lo = 0, hi = heaps_.size();
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (heaps_[mid].end <= p) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo < heaps_.size() && p >= heaps_[lo].begin ? &heaps_[lo] : nullptr;
  }

  // The in-use chunk of `h` whose memory holds `p`, or 0.
  static uintptr_t ChunkOf(const Heap& h, uintptr_t p) {
    if (h.mmapped) return h.begin;
    size_t i = (p - h.begin) / 16;
    size_t word = i / 64;
    uint64_t bits = h.starts[word] & (~uint64_t{0} >> (63 - i % 64));
    // Backwards to the nearest chunk start.
    while (bits == 0) {
      if (word == 0) return 0;
      bits = h.starts[--word];
    }
    uintptr_t c = h.begin + (word * 64 + 63 - __builtin_clzll(bits)) * 16;
    if (p < c + 16) {
      // The chunk's header: where a pointer one past the end of the
      // previous block points (stdio's _IO_buf_end). It reaches that block
      // (if in use), never this one.
      return c > h.begin ? ChunkOf(h, c - 8) : 0;
    }
    return p < ChunkEnd(h, c) ? c : 0;
  }

  // The end of the memory of chunk `c` that a program may use: an in-use
  // chunk's last word lies in the next chunk's header.
  static uintptr_t ChunkEnd(const Heap& h, uintptr_t c) {
    if (h.mmapped) return h.end;
    uintptr_t end = c + ChunkSize(c) + 8;
    return end < h.end ? end : h.end;
  }

  static bool Marked(const Heap& h, uintptr_t c, Mark mark) {
    return h.mmapped ? h.block_marks[mark]
                     : TestBit(h.marks[mark], (c - h.begin) / 16);
  }
  static void SetMark(Heap& h, uintptr_t c, Mark mark) {
    if (h.mmapped) {
      h.block_marks[mark] = true;
    } else {
      SetBit(h.marks[mark], (c - h.begin) / 16);
    }
  }

  // `p` (a word found in reached memory): marks the chunk it points into,
  // if any, and queues it.
  void Visit(uintptr_t p, Mark mark) {
    if (p < heap_lo_ || p >= heap_hi_) return;
    Heap* h = HeapOf(p);
    if (h == nullptr) return;
    uintptr_t c = ChunkOf(*h, p);
    if (c == 0 || Marked(*h, c, kReached) || Marked(*h, c, mark)) return;
    SetMark(*h, c, mark);
    pending_.push_back(c);
    if (mark == kIndirect) visited_.push_back(c);
  }

  // Pages of [begin, end) that hold data: present or swapped out (a page
  // never touched is zero).
  void ScanRange(uintptr_t begin, uintptr_t end, Mark mark, uint64_t* bytes) {
    begin = (begin + 7) & ~uintptr_t{7};
    for (uintptr_t page = begin & ~(kPage - 1); page < end;) {
      uintptr_t batch_end = std::min(end, page + 512 * kPage);
      uint64_t entries[512];
      size_t n = (batch_end - page + kPage - 1) / kPage;
      bool known = pagemap_ >= 0 &&
                   syscall(SYS_pread64, pagemap_, entries, n * 8,
                           (page / kPage) * 8) == static_cast<long>(n * 8);
      for (size_t k = 0; k < n; ++k, page += kPage) {
        if (known && (entries[k] >> 62) == 0) continue;  // never touched
        uintptr_t lo = std::max(begin, page);
        uintptr_t hi = std::min(end, page + kPage);
        for (uintptr_t p = lo; p + 8 <= hi; p += 8) Visit(Word(p), mark);
        if (hi > lo) *bytes += hi - lo;
      }
    }
  }

  // The stopped threads' stack pointers: a thread's stack is live from there
  // up (with the red zone below it).
  void FindLiveStacks() {
    uint32_t threads = s_->thread_count.load(std::memory_order_acquire);
    for (Mapping& m : maps_) {
      for (uint32_t t = 0; t < threads; ++t) {
        uintptr_t sp = s_->threads[t].regs.rsp;
        if (sp >= m.begin && sp < m.end) {
          m.live_begin = std::max(m.begin, (sp - kRedZone) & ~uintptr_t{7});
        }
      }
    }
  }

  // Roots: registers, and the live part of every scannable mapping, less the
  // excluded ranges and the heaps.
  void ScanRoots() {
    FindLiveStacks();
    uint32_t threads = s_->thread_count.load(std::memory_order_acquire);
    for (uint32_t t = 0; t < threads; ++t) {
      const user_regs_struct& r = s_->threads[t].regs;
      const unsigned long long values[] = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi,
                                           r.rdi, r.rbp, r.r8,  r.r9,  r.r10,
                                           r.r11, r.r12, r.r13, r.r14, r.r15};
      for (unsigned long long v : values) Visit(v, kReached);
    }
    for (const Mapping& m : maps_) {
      if (!m.scannable) continue;
      uintptr_t p = m.live_begin;
      while (p < m.end) {
        uintptr_t hole_begin, hole_end;
        if (!NextHole(p, m.end, &hole_begin, &hole_end)) {
          ScanRange(p, m.end, kReached, &s_->root_bytes);
          break;
        }
        if (hole_begin > p) {
          ScanRange(p, hole_begin, kReached, &s_->root_bytes);
        }
        p = hole_end;
      }
    }
  }

  // The first memory at or after `p` and before `end` that is not a root
  // (excluded, or a heap's): true and its range, or false.
  bool NextHole(uintptr_t p, uintptr_t end, uintptr_t* begin,
                uintptr_t* hole_end) const {
    bool found = false;
    auto consider = [&](uintptr_t b, uintptr_t e) {
      if (e <= p || b >= end) return;
      b = std::max(b, p);
      if (!found || b < *begin) {
        *begin = b;
        *hole_end = e;
        found = true;
      }
    };
    for (size_t i = 0; i < s_->exclude_count; ++i) {
      consider(s_->exclude[i].begin, s_->exclude[i].end);
    }
    for (const Heap& h : heaps_) consider(h.cover_begin, h.cover_end);
    if (main_arena_ != 0) consider(main_arena_, main_arena_ + kArenaSize);
    return found;
  }

  void Flood(Mark mark) {
    while (!pending_.empty()) {
      uintptr_t c = pending_.back();
      pending_.pop_back();
      Heap* h = HeapOf(c);
      uintptr_t first = h->mmapped ? c + 16 : c + 16;
      ScanRange(first, ChunkEnd(*h, c), mark, &s_->reached_bytes);
    }
  }

  // What `key`'s memory is, and its heap chunk if it is one.
  enum class Place { kHeap, kRoot, kDeadStack, kUnknown };
  Place Locate(uintptr_t key, Heap** heap, uintptr_t* chunk) {
    if (Excluded(key, key + 1)) return Place::kUnknown;
    if (Heap* h = HeapOf(key)) {
      uintptr_t c = ChunkOf(*h, key);
      if (c == 0) return Place::kUnknown;
      *heap = h;
      *chunk = c;
      return Place::kHeap;
    }
    for (const Heap& h : heaps_) {
      if (key >= h.cover_begin && key < h.cover_end) return Place::kUnknown;
    }
    for (const Mapping& m : maps_) {
      if (key < m.begin || key >= m.end) continue;
      if (!m.scannable) return Place::kUnknown;
      // Below a thread's stack pointer: a frame that has returned.
      return key >= m.live_begin ? Place::kRoot : Place::kDeadStack;
    }
    return Place::kUnknown;
  }

  void Judge() {
    const size_t n = s_->key_count;
    for (size_t i = 0; i < n; ++i) {
      Heap* h = nullptr;
      uintptr_t c = 0;
      switch (Locate(s_->keys[i], &h, &c)) {
        case Place::kHeap:
          s_->verdicts[i] =
              Marked(*h, c, kReached) ? Reach::kReachable : Reach::kLost;
          break;
        case Place::kRoot:
          s_->verdicts[i] = Reach::kReachable;
          break;
        case Place::kDeadStack:
          s_->verdicts[i] = Reach::kLost;
          break;
        case Place::kUnknown:
          s_->verdicts[i] = Reach::kUnknown;
          break;
      }
    }
    // Lost handles whose memory another lost handle's memory reaches are
    // indirectly lost (LeakSanitizer's terms); a handle already found so is
    // not a starting point, so one of a cycle stays directly lost.
    for (size_t i = 0; i < n; ++i) {
      if (s_->verdicts[i] != Reach::kLost) continue;
      Heap* h = HeapOf(s_->keys[i]);
      if (h == nullptr) continue;
      uintptr_t c = ChunkOf(*h, s_->keys[i]);
      if (c == 0 || Marked(*h, c, kIndirect)) continue;
      SetMark(*h, c, kIndirect);
      pending_.push_back(c);
      visited_.clear();
      Flood(kIndirect);
      MarkIndirect(i);
    }
  }

  // The lost handles other than `origin` in the chunks the flood from
  // `origin` reached (visited_).
  void MarkIndirect(size_t origin) {
    const uintptr_t* keys = s_->keys;
    const size_t n = s_->key_count;
    for (uintptr_t c : visited_) {
      Heap* h = HeapOf(c);
      uintptr_t end = ChunkEnd(*h, c);
      for (size_t j = std::lower_bound(keys, keys + n, c) - keys;
           j < n && keys[j] < end; ++j) {
        if (j != origin && s_->verdicts[j] == Reach::kLost) {
          s_->verdicts[j] = Reach::kIndirectlyLost;
        }
      }
    }
  }

  Shared* s_;
  MappedVector<Mapping> maps_;
  MappedVector<Heap> heaps_;
  MappedVector<uintptr_t> pending_;
  MappedVector<uintptr_t>
      visited_;  // chunks the last flood from a lost one reached
  uintptr_t heap_lo_ = 0, heap_hi_ = 0;
  uintptr_t main_arena_ = 0;
  uint64_t present_[512];
  uintptr_t present_first_ = ~uintptr_t{0} / 2;
  int pagemap_ = -1;
};

// --- stopping the world
// ---------------------------------------------------------

long Ptrace(long request, pid_t tid, long addr, long data) {
  return syscall(SYS_ptrace, request, tid, addr, data);
}

// Waits for `tid` to stop after PTRACE_INTERRUPT; a signal that arrives
// first is delivered (the thread runs its handler) and the stop requested
// again. False if the thread is gone.
bool WaitForStop(pid_t tid) {
  for (int tries = 0; tries < 1000; ++tries) {
    int status = 0;
    long r = syscall(SYS_wait4, tid, &status, __WALL, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) return false;
    if (!WIFSTOPPED(status)) continue;
    if ((status >> 16) == PTRACE_EVENT_STOP) return true;
    Ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(status));
    Ptrace(PTRACE_INTERRUPT, tid, 0, 0);
  }
  return false;
}

// Attaches and stops every thread of the process but the watchdog, until a
// pass over /proc/PID/task finds no new one; reads their registers.
// Calls fn(tid) for each thread listed in `dir` (a /proc/PID/task
// directory, read again from its start) until fn returns false; false then.
// Neither allocates nor takes a lock.
template <typename Fn>
bool ForEachTask(int dir, Fn&& fn) {
  syscall(SYS_lseek, dir, 0, SEEK_SET);
  char buf[8192];
  long got;
  while ((got = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
    for (long off = 0; off < got;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      pid_t tid = static_cast<pid_t>(std::atoi(d->d_name));
      if (tid > 0 && !fn(tid)) return false;
    }
  }
  return true;
}

bool StopTheWorld(Shared* s, pid_t* attached, size_t* attached_count) {
  char path[64];
  std::memcpy(path, "/proc/", 6);
  char* p = path + 6;
  char digits[16];
  int nd = 0;
  for (pid_t v = s->pid; v > 0; v /= 10)
    digits[nd++] = static_cast<char>('0' + v % 10);
  while (nd > 0) *p++ = digits[--nd];
  std::memcpy(p, "/task", 6);
  int dir = static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) {
    s->failure = "cannot list the process's threads";
    return false;
  }
  bool found_new = true;
  bool ok = true;
  for (int pass = 0; ok && found_new && pass < 100; ++pass) {
    found_new = false;
    ok = ForEachTask(dir, [&](pid_t tid) {
      if (tid == s->skip_tid) return true;
      for (size_t i = 0; i < *attached_count; ++i) {
        if (attached[i] == tid) return true;
      }
      if (*attached_count == s->thread_capacity) {
        s->failure = "too many threads";
        return false;
      }
      if (Ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
        if (errno == ESRCH) return true;  // exited meanwhile
        s->failure = "ptrace is not permitted";
        return false;
      }
      attached[(*attached_count)++] = tid;
      found_new = true;
      Ptrace(PTRACE_INTERRUPT, tid, 0, 0);
      if (!WaitForStop(tid)) return true;  // exited: nothing to read
      uint32_t t = s->thread_count.load(std::memory_order_relaxed);
      if (Ptrace(PTRACE_GETREGS, tid, 0,
                 reinterpret_cast<long>(&s->threads[t].regs)) == 0) {
        s->threads[t].tid = tid;
        s->thread_count.store(t + 1, std::memory_order_release);
      }
      return true;
    });
  }
  syscall(SYS_close, dir);
  return ok;
}

int TracerMain(void* arg) {
  auto* s = static_cast<Shared*>(arg);
  // Copies of the host's files would keep them open (a socket the host
  // closes would stay connected): keep only the pipe.
  if (s->pipe_write > 0) syscall(SYS_close_range, 0, s->pipe_write - 1, 0);
  syscall(SYS_close_range, s->pipe_write + 1, ~0U, 0);
  // The threads this tracer attached: after the registers in the shared
  // area (never scanned).
  pid_t* attached = reinterpret_cast<pid_t*>(
      reinterpret_cast<char*>(s->threads + s->thread_capacity));
  size_t attached_count = 0;
  int64_t start = MonoNs();
  if (StopTheWorld(s, attached, &attached_count)) {
    long child = syscall(SYS_fork);
    if (child == 0) {
      int64_t scan_start = MonoNs();
      Snapshot snapshot(s);
      if (snapshot.Run()) {
        s->scan_ns = MonoNs() - scan_start;
        s->done.store(true, std::memory_order_release);
      }
      syscall(SYS_exit_group, 0);
    }
    if (child < 0) s->failure = "cannot fork a snapshot";
    s->child.store(static_cast<pid_t>(child), std::memory_order_release);
  }
  for (size_t i = 0; i < attached_count; ++i) {
    Ptrace(PTRACE_DETACH, attached[i], 0, 0);
  }
  s->pause_ns.store(MonoNs() - start, std::memory_order_release);
  pid_t child = s->child.load(std::memory_order_acquire);
  if (child > 0) {
    int status;
    struct rusage usage;
    std::memset(&usage, 0, sizeof usage);
    while (syscall(SYS_wait4, child, &status, __WALL, &usage) < 0 &&
           errno == EINTR) {
    }
    s->snapshot_max_rss_kb = static_cast<uint64_t>(usage.ru_maxrss);
  }
  return 0;
}

// What glibc's free writes into the second word of a block it keeps in its
// tcache (a random number chosen at start-up), or 0 if a freed block shows
// none. Found once by freeing a block of our own.
// Found without a function-local static: the watchdog finds it, and a fork
// in the middle would leave the child's guard taken for ever.
std::atomic<bool> g_tcache_key_known{false};
uintptr_t g_tcache_key = 0;

uintptr_t FindTcacheKey() {
  constexpr uintptr_t kMark = 0x6c65616b77617463;  // free would not leave it
  // A size whose tcache bin is full sends the block elsewhere: try a few.
  for (size_t size = 1000; size >= 600; size -= 24) {
    auto* block = static_cast<volatile uintptr_t*>(malloc(size));
    if (block == nullptr) return 0;
    block[1] = kMark;
    free(const_cast<uintptr_t*>(block));
    uintptr_t seen = block[1];  // glibc keeps a freed tcache block mapped
    if (seen != kMark && seen != 0) return seen;
  }
  return 0;
}

uintptr_t TcacheKey() {
  if (!g_tcache_key_known.load(std::memory_order_acquire)) {
    // Two threads may both look: they find the same number.
    g_tcache_key = FindTcacheKey();
    g_tcache_key_known.store(true, std::memory_order_release);
  }
  return g_tcache_key;
}

// True if malloc's layout is the one this file knows (glibc 2.27 to 2.40).
bool KnownGlibc() {
  const char* v = gnu_get_libc_version();
  int major = 0, minor = 0;
  for (; *v >= '0' && *v <= '9'; ++v) major = major * 10 + (*v - '0');
  if (*v == '.') ++v;
  for (; *v >= '0' && *v <= '9'; ++v) minor = minor * 10 + (*v - '0');
  return major == 2 && minor >= 27 && minor <= 40;
}

size_t CountThreads() {
  size_t n = 0;
  int dir = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/task",
                                     O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return 0;
  ForEachTask(dir, [&n](pid_t) {
    ++n;
    return true;
  });
  syscall(SYS_close, dir);
  return n;
}

}  // namespace

// Valgrind runs the program on a CPU of its own and replaces malloc: no
// clone of the address space, no glibc heap to walk.
bool UnderValgrind() {
  // No function-local static (see TcacheKey): 0 not known yet, 1 no, 2 yes.
  static std::atomic<int> under{0};
  int known = under.load(std::memory_order_acquire);
  if (known == 0) {
    const char* preload = getenv("LD_PRELOAD");
    known = preload != nullptr && std::strstr(preload, "vgpreload") != nullptr
                ? 2
                : 1;
    under.store(known, std::memory_order_release);
  }
  return known == 2;
}

void PrepareReachability() {
  if (!UnderValgrind()) TcacheKey();
}

bool ScanReachability(const uintptr_t* keys, size_t count, Reach* verdicts,
                      const MemoryRange* exclude, size_t exclude_count,
                      int64_t timeout_ms, ReachStats* stats) {
  *stats = ReachStats();
  std::fill(verdicts, verdicts + count, Reach::kUnknown);
  if (UnderValgrind()) {
    stats->failure = "not under valgrind";
    return false;
  }
  size_t capacity = CountThreads() * 2 + 64;
  constexpr size_t kExtraExclusions = 3;
  size_t n_exclude = exclude_count + kExtraExclusions;
  size_t bytes = sizeof(Shared) + count * sizeof(uintptr_t) +
                 count * sizeof(Reach) + 16 + n_exclude * sizeof(MemoryRange) +
                 capacity * (sizeof(ThreadRegs) + sizeof(pid_t)) + 64;
  bytes = (bytes + kPage - 1) & ~(kPage - 1);
  void* area = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    stats->failure = "cannot map memory";
    return false;
  }
  void* stack = mmap(nullptr, kTracerStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stack == MAP_FAILED) {
    munmap(area, bytes);
    stats->failure = "cannot map memory";
    return false;
  }
  auto* s = new (area) Shared();
  char* next = static_cast<char*>(area) + ((sizeof(Shared) + 15) & ~size_t{15});
  auto* key_copy = reinterpret_cast<uintptr_t*>(next);
  std::memcpy(key_copy, keys, count * sizeof(uintptr_t));
  next += count * sizeof(uintptr_t);
  auto* range_copy = reinterpret_cast<MemoryRange*>(next);
  std::memcpy(range_copy, exclude, exclude_count * sizeof(MemoryRange));
  uintptr_t lo, hi;
  size_t x = exclude_count;
  range_copy[x++] = {reinterpret_cast<uintptr_t>(area),
                     reinterpret_cast<uintptr_t>(area) + bytes};
  range_copy[x++] = {reinterpret_cast<uintptr_t>(stack),
                     reinterpret_cast<uintptr_t>(stack) + kTracerStack};
  if (CurrentStackBounds(&lo, &hi)) range_copy[x++] = {lo, hi};
  std::sort(range_copy, range_copy + x,
            [](const MemoryRange& a, const MemoryRange& b) {
              return a.begin < b.begin;
            });
  next += n_exclude * sizeof(MemoryRange);
  auto* threads = reinterpret_cast<ThreadRegs*>(
      (reinterpret_cast<uintptr_t>(next) + 15) & ~uintptr_t{15});
  next = reinterpret_cast<char*>(threads + capacity) + capacity * sizeof(pid_t);
  auto* verdict_copy = reinterpret_cast<Reach*>(next);
  s->pid = getpid();
  s->skip_tid = static_cast<pid_t>(syscall(SYS_gettid));
  s->tcache_key = TcacheKey();
  s->glibc_layout = KnownGlibc();
  s->key_count = count;
  s->exclude_count = x;
  s->thread_capacity = capacity;
  s->keys = key_copy;
  s->verdicts = verdict_copy;
  s->exclude = range_copy;
  s->threads = threads;
  s->failure = "";

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    munmap(stack, kTracerStack);
    munmap(area, bytes);
    stats->failure = "cannot make a pipe";
    return false;
  }
  s->pipe_write = fds[1];
  // Exit signal 0: the host gets no SIGCHLD, and its wait() never sees the
  // tracer (only __WALL does).
  pid_t tracer = clone(&TracerMain, static_cast<char*>(stack) + kTracerStack,
                       CLONE_VM | CLONE_UNTRACED, s);
  close(fds[1]);
  bool finished = false;
  if (tracer > 0) {
    // The pipe's write end closes when the tracer and the snapshot are gone.
    struct pollfd pfd = {fds[0], POLLIN, 0};
    int64_t deadline = MonoNs() + timeout_ms * 1000000;
    for (;;) {
      int64_t left_ms = (deadline - MonoNs()) / 1000000;
      if (left_ms <= 0) break;
      int r = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
      if (r > 0) {
        char c;
        if (read(fds[0], &c, 1) <= 0) {
          finished = true;
          break;
        }
      }
    }
    if (!finished) {
      pid_t child = s->child.load(std::memory_order_acquire);
      if (child > 0) kill(child, SIGKILL);
      kill(tracer, SIGKILL);
      stats->failure = "the scan took too long";
    }
    int status;
    while (waitpid(tracer, &status, __WALL) < 0 && errno == EINTR) {
    }
  } else {
    stats->failure = "cannot start the tracer";
  }
  close(fds[0]);
  bool made = finished && s->done.load(std::memory_order_acquire);
  if (made) std::memcpy(verdicts, verdict_copy, count * sizeof(Reach));
  if (!made && stats->failure[0] == '\0') {
    stats->failure = s->failure[0] != '\0' ? s->failure : "the scan failed";
  }
  stats->pause_ns = s->pause_ns.load(std::memory_order_acquire);
  stats->scan_ns = s->scan_ns;
  stats->root_bytes = s->root_bytes;
  stats->heap_bytes = s->heap_bytes;
  stats->reached_bytes = s->reached_bytes;
  stats->snapshot_max_rss_kb = s->snapshot_max_rss_kb;
  stats->threads = s->thread_count.load(std::memory_order_acquire);
  munmap(stack, kTracerStack);
  munmap(area, bytes);
  return made;
}

}  // namespace leakwatch
