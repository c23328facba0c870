// Benchmark of the reachability scan (tracker/reach.h) on a process with a
// heap the size of a real service's: what one ScanReachability costs, per GiB
// of memory scanned and of heap walked, how long the host is paused, and the
// memory the snapshot takes.
//
// The heap (HEAP_MIB of live blocks, built before the first scan):
//   - built by three threads at once, the main thread and two workers, so
//     there are glibc's main heap and two thread arenas (each made of several
//     64 MiB heaps);
//   - per thread: a hash table of linked entries (an entry of 56..168 bytes
//     holds its next entry, its value and maybe a handle; the values are
//     64 B..64 KiB, half of them 256 bytes or less, each pointing at an older
//     block), arrays of 64..4096 pointers to older blocks (8% of the bytes),
//     large blocks of 160 KiB..2 MiB that malloc gives mappings of their own
//     (20% of the bytes; a pointer every 64 bytes), and the registry of every
//     block (64 KiB pages of pointers): everything is reachable from a global;
//   - holes: after one block in four, a block of a value's size that is
//     freed once the build is done (free chunks between live ones, about 15%
//     of the heap, that the scan walks but does not read); and 1% of the
//     values leaked;
//   - every block is filled when allocated (bytes that never look like a
//     pointer), so no stale pointer is left in memory that is in use.
// Handles: HANDLES blocks of 200 bytes (each with a 4 KiB buffer of its own),
// spread over the three threads and over the build. Half are reachable (in a
// global array, or held by a hash table entry), half lost (held by a request
// block that was freed, or an entry's pointer overwritten). The keys handed
// to the scan, with what each verdict must be, live in a mapping the scan is
// told to exclude; nothing else keeps a handle's address.
// Threads: the two workers and IDLE_THREADS more are parked on a condition
// variable during the scans; the main thread scans (its own stack is never a
// root: the scanner leaves out its caller's stack), as the agent's watchdog
// does. A worker scrubs the stack its building used before it parks, so no
// dead frame leaves a lost handle's address in a live one.
//
// Usage: reach_bench [HEAP_MIB [HANDLES [IDLE_THREADS [REPS]]]]
//   defaults: 1024 MiB, 1000 handles, 8 idle threads, 3 scans
// Prints one line per scan and one of the medians (stdout); what the heap is
// made of goes to stderr.
// Exit status: 0 if every scan made its verdicts and each was the expected
// one (exactly the reachable half reachable, the lost half lost); 1 if not
// (the wrong verdicts are listed on stderr); 2 for bad arguments or set-up.
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "tracker/reach.h"

namespace leakwatch {
namespace {

constexpr size_t kHandleBytes = 200;
constexpr size_t kHandleBufferBytes = 4096;
constexpr size_t kMaxHandles = 1 << 16;
constexpr int kWorkers = 2;
constexpr int kParts = kWorkers + 1;    // the main thread's part is 0
constexpr size_t kRegistryPage = 8192;  // pointers per registry page (64 KiB)
constexpr double kLargeShare = 0.20;
constexpr double kArrayShare = 0.08;
constexpr int64_t kScanTimeoutMs = 600000;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The process's resident memory in bytes (/proc/self/statm), 0 if unknown.
uint64_t HostRssBytes() {
  char text[256] = {};
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  size_t n = std::fread(text, 1, sizeof text - 1, f);
  std::fclose(f);
  text[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(text, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// splitmix64: a fixed seed per part, so every run builds the same heap.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi].
  size_t Between(size_t lo, size_t hi) { return lo + Next() % (hi - lo + 1); }

 private:
  uint64_t state_;
};

// How a handle is kept, or lost.
enum class Placement : uint8_t {
  kGlobalArray,   // reachable: in g_pool
  kEntry,         // reachable: held by a hash table entry
  kFreedRequest,  // lost: held by a request block that was freed
  kOverwritten,   // lost: an entry held it, then its pointer was cleared
};

const char* PlacementName(Placement p) {
  switch (p) {
    case Placement::kGlobalArray:
      return "global array";
    case Placement::kEntry:
      return "hash table entry";
    case Placement::kFreedRequest:
      return "freed request";
    case Placement::kOverwritten:
      return "overwritten entry pointer";
  }
  return "?";
}

bool IsReachable(Placement p) {
  return p == Placement::kGlobalArray || p == Placement::kEntry;
}

const char* ReachName(Reach r) {
  switch (r) {
    case Reach::kUnknown:
      return "unknown";
    case Reach::kReachable:
      return "reachable";
    case Reach::kLost:
      return "lost";
    case Reach::kIndirectlyLost:
      return "indirectly lost";
  }
  return "?";
}

// A handle and what the scan must say of it.
struct Expected {
  uintptr_t address;
  Placement placement;
  uint8_t part;  // the thread that allocated it
};

// The scan's input and the expected verdicts, in one mapping of their own
// that is passed to the scan as `exclude`: the only place that holds every
// handle's address.
class KeyArea {
 public:
  bool Map(size_t count) {
    count_ = count;
    bytes_ = count * (sizeof(Expected) + sizeof(uintptr_t) + sizeof(Reach));
    bytes_ = (bytes_ + 4095) & ~size_t{4095};
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    base_ = static_cast<char*>(p);
    expected_ = reinterpret_cast<Expected*>(base_);
    keys_ = reinterpret_cast<uintptr_t*>(expected_ + count);
    verdicts_ = reinterpret_cast<Reach*>(keys_ + count);
    return true;
  }
  // Sorts by address and lays out the keys in that order.
  void Sort() {
    std::sort(expected_, expected_ + count_,
              [](const Expected& a, const Expected& b) {
                return a.address < b.address;
              });
    for (size_t i = 0; i < count_; ++i) keys_[i] = expected_[i].address;
  }
  MemoryRange Range() const {
    return {reinterpret_cast<uintptr_t>(base_),
            reinterpret_cast<uintptr_t>(base_) + bytes_};
  }
  size_t count() const { return count_; }
  Expected* expected() { return expected_; }
  const uintptr_t* keys() const { return keys_; }
  Reach* verdicts() { return verdicts_; }

 private:
  char* base_ = nullptr;
  size_t bytes_ = 0;
  size_t count_ = 0;
  Expected* expected_ = nullptr;
  uintptr_t* keys_ = nullptr;
  Reach* verdicts_ = nullptr;
};

KeyArea g_keys;
// The reachable handles kept in a global array (volatile: nothing reads it,
// and the compiler must not drop the stores).
void* volatile g_pool[kMaxHandles];
// stdout's buffer: one that malloc gave after the build would be reachable
// from libc's data and could hold a stale handle address in its unused part.
char g_stdout_buffer[BUFSIZ];

// A hash table entry; its key bytes follow.
struct Entry {
  Entry* next;
  uint64_t hash;
  char* value;
  void* handle;
};

// What one thread builds; everything it allocates (but the leaked blocks and
// the lost handles) is reachable from here, and each Part from g_parts.
struct Part {
  int index = 0;
  size_t budget = 0;        // bytes of live blocks to build
  size_t handle_count = 0;  // handles this part makes
  // Built.
  Entry** buckets = nullptr;
  size_t bucket_mask = 0;
  void*** registry = nullptr;  // pages of pointers to every block
  size_t registry_pages = 0;
  size_t blocks = 0;
  char* temps = nullptr;  // blocks freed after the build, linked by word 0
  size_t live = 0;
  size_t large_bytes = 0, array_bytes = 0;
  size_t entries = 0, arrays = 0, larges = 0, leaked = 0;
  size_t freed = 0;
  size_t pointers = 0;  // pointers to heap blocks stored in live blocks
};

Part* g_parts[kParts];

// Threads parked during the scans.
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
int g_built = 0;      // workers done building
bool g_stop = false;  // the threads may exit

// A block of `size` bytes filled, to its usable end, with a byte that never
// makes a word look like a pointer (0x61..0x7a in every byte), or with 0.
char* Alloc(size_t size, int fill) {
  char* p = static_cast<char*>(std::malloc(size));
  if (p == nullptr) {
    std::fprintf(stderr, "reach_bench: out of memory (%zu bytes)\n", size);
    std::exit(2);
  }
  std::memset(p, fill, malloc_usable_size(p));
  return p;
}

int Letter(Rng& rng) { return 'a' + static_cast<int>(rng.Next() % 26); }

void Register(Part* part, void* block) {
  size_t page = part->blocks / kRegistryPage;
  if (part->blocks % kRegistryPage == 0) {
    if (page == part->registry_pages) {
      std::fprintf(stderr, "reach_bench: registry full\n");
      std::exit(2);
    }
    part->registry[page] =
        reinterpret_cast<void**>(Alloc(kRegistryPage * sizeof(void*), 0));
    part->live += kRegistryPage * sizeof(void*);
  }
  part->registry[page][part->blocks % kRegistryPage] = block;
  ++part->blocks;
  ++part->pointers;
}

// A block registered before, or null if there is none.
void* AnyBlock(Part* part, Rng& rng) {
  if (part->blocks == 0) return nullptr;
  ++part->pointers;
  size_t i = rng.Next() % part->blocks;
  return part->registry[i / kRegistryPage][i % kRegistryPage];
}

// Value sizes: half 64..256 bytes, then up to 2 KiB, 16 KiB and 64 KiB.
size_t ValueSize(Rng& rng) {
  uint64_t r = rng.Next() % 100;
  if (r < 50) return rng.Between(64, 256);
  if (r < 80) return rng.Between(257, 2048);
  if (r < 95) return rng.Between(2049, 16384);
  return rng.Between(16385, 65536);
}

// A hash table entry with a value of mixed size (pointing at an older block)
// and `handle`; returns it.
Entry* AddEntry(Part* part, Rng& rng, void* handle) {
  size_t value_size = ValueSize(rng);
  char* value = Alloc(value_size, Letter(rng));
  *reinterpret_cast<void**>(value) = AnyBlock(part, rng);
  size_t entry_size = sizeof(Entry) + rng.Between(24, 136);
  auto* entry = reinterpret_cast<Entry*>(Alloc(entry_size, Letter(rng)));
  entry->hash = rng.Next();
  entry->value = value;
  entry->handle = handle;
  Entry** bucket = &part->buckets[entry->hash & part->bucket_mask];
  entry->next = *bucket;
  *bucket = entry;
  Register(part, value);
  Register(part, entry);
  part->live += value_size + entry_size;
  part->pointers += handle != nullptr ? 3 : 2;  // value, next or bucket
  ++part->entries;
  return entry;
}

// An array of 64..4096 pointers to older blocks.
void AddArray(Part* part, Rng& rng) {
  size_t n = rng.Between(64, 4096);
  auto* array = reinterpret_cast<void**>(Alloc(n * sizeof(void*), 0));
  for (size_t i = 0; i < n; ++i) array[i] = AnyBlock(part, rng);
  Register(part, array);
  part->live += n * sizeof(void*);
  part->array_bytes += n * sizeof(void*);
  ++part->arrays;
}

// A block above malloc's mmap threshold: records of 64 bytes, each beginning
// with a pointer to an older block.
void AddLarge(Part* part, Rng& rng) {
  size_t size = rng.Between(160 << 10, 2 << 20) & ~size_t{63};
  char* block = Alloc(size, Letter(rng));
  for (size_t at = 0; at + 64 <= size; at += 64) {
    *reinterpret_cast<void**>(block + at) = AnyBlock(part, rng);
  }
  Register(part, block);
  part->live += size;
  part->large_bytes += size;
  ++part->larges;
}

// A block that lives while the heap is built (a load peak's), then freed.
void AddTemp(Part* part, Rng& rng) {
  char* temp = Alloc(ValueSize(rng), Letter(rng));
  *reinterpret_cast<char**>(temp) = part->temps;
  part->temps = temp;
}

// Handle number `g` of all: where it is kept follows from its number, so
// every part makes every kind.
Placement PlacementOf(size_t g) {
  bool reachable = g % 2 == 0;
  bool first_way = (g / 2) % 2 == 0;
  if (reachable) {
    return first_way ? Placement::kGlobalArray : Placement::kEntry;
  }
  return first_way ? Placement::kFreedRequest : Placement::kOverwritten;
}

void AddHandle(Part* part, Rng& rng, size_t g) {
  char* handle = Alloc(kHandleBytes, Letter(rng));
  char* buffer = Alloc(kHandleBufferBytes, Letter(rng));
  *reinterpret_cast<char**>(handle + 8) = buffer;
  part->live += kHandleBytes + kHandleBufferBytes;
  ++part->pointers;
  Placement placement = PlacementOf(g);
  g_keys.expected()[g] = {reinterpret_cast<uintptr_t>(handle), placement,
                          static_cast<uint8_t>(part->index)};
  switch (placement) {
    case Placement::kGlobalArray:
      g_pool[g] = handle;
      break;
    case Placement::kEntry:
      AddEntry(part, rng, handle);
      break;
    case Placement::kFreedRequest: {
      // A request that held the connection; freed, the connection not closed.
      char* request = Alloc(96, Letter(rng));
      *reinterpret_cast<char**>(request + 16) = handle;
      asm volatile("" : : "r"(request) : "memory");  // keep the store
      std::free(request);
      break;
    }
    case Placement::kOverwritten: {
      Entry* entry = AddEntry(part, rng, handle);
      asm volatile("" : : "r"(entry) : "memory");  // keep the first store
      entry->handle = nullptr;
      break;
    }
  }
}

// Builds a part's heap; its handles are numbered part->index + kParts * k
// and spread evenly over the build.
[[gnu::noinline]] void BuildPart(Part* part) {
  Rng rng(0x6c65616b + 7919 * static_cast<uint64_t>(part->index));
  size_t buckets = 1024;
  while (buckets < part->budget / 4096) buckets *= 2;
  part->buckets = reinterpret_cast<Entry**>(Alloc(buckets * sizeof(Entry*), 0));
  part->bucket_mask = buckets - 1;
  part->live += buckets * sizeof(Entry*);
  // Every block is at least 56 bytes: an upper bound of the registry's size.
  part->registry_pages = part->budget / 56 / kRegistryPage + 2;
  part->registry = reinterpret_cast<void***>(
      Alloc(part->registry_pages * sizeof(void**), 0));
  part->live += part->registry_pages * sizeof(void**);
  size_t made = 0;
  while (part->live < part->budget || made < part->handle_count) {
    while (made < part->handle_count &&
           part->live >= part->budget / part->handle_count * made) {
      AddHandle(part, rng, static_cast<size_t>(part->index) + kParts * made);
      ++made;
    }
    if (part->large_bytes < part->live * kLargeShare) {
      AddLarge(part, rng);
    } else if (part->array_bytes < part->live * kArrayShare) {
      AddArray(part, rng);
    } else {
      AddEntry(part, rng, nullptr);
    }
    if (rng.Next() % 4 == 0) AddTemp(part, rng);
    if (rng.Next() % 100 == 0) {
      // Leaked: filled and dropped.
      Alloc(ValueSize(rng), Letter(rng));
      ++part->leaked;
    }
  }
  while (part->temps != nullptr) {
    char* next = *reinterpret_cast<char**>(part->temps);
    std::free(part->temps);
    part->temps = next;
    ++part->freed;
  }
}

// Overwrites the stack below the caller's frame, where BuildPart's frames
// were, so that no live frame of the parked thread holds a stale address.
[[gnu::noinline]] void ScrubStack() {
  char area[64 * 1024];
  std::memset(area, 0, sizeof area);
  asm volatile("" : : "r"(area) : "memory");
}

void Park() {
  pthread_mutex_lock(&g_mu);
  while (!g_stop) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
}

void* WorkerMain(void* arg) {
  BuildPart(static_cast<Part*>(arg));
  ScrubStack();
  pthread_mutex_lock(&g_mu);
  ++g_built;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  Park();
  return nullptr;
}

void* IdleMain(void*) {
  Park();
  return nullptr;
}

bool ParseArg(const char* text, long lo, long hi, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
    return false;
  }
  *out = v;
  return true;
}

// "420 KiB", "812 MiB" or "1.02 GiB".
const char* Size(double bytes, char* buf, size_t n) {
  if (bytes >= kGiB) {
    std::snprintf(buf, n, "%.2f GiB", bytes / kGiB);
  } else if (bytes < kMiB) {
    std::snprintf(buf, n, "%.0f KiB", bytes / 1024);
  } else {
    std::snprintf(buf, n, "%.0f MiB", bytes / kMiB);
  }
  return buf;
}

// The figures of one scan (or their medians).
struct Figures {
  double scan_ms = 0;
  double scanned_bytes = 0;  // roots + heap chunks reached
  double root_bytes = 0;
  double walked_bytes = 0;  // glibc heap walked
  double ms_per_gib_scanned = 0;
  double ms_per_gib_walked = 0;
  double pause_ms = 0;
  double threads = 0;
  double snapshot_rss_bytes = 0;
  double host_rss_before = 0;
  double host_rss_after = 0;
};

Figures FiguresOf(const ReachStats& s, uint64_t rss_before,
                  uint64_t rss_after) {
  Figures f;
  f.scan_ms = s.scan_ns / 1e6;
  f.root_bytes = static_cast<double>(s.root_bytes);
  f.scanned_bytes = static_cast<double>(s.root_bytes + s.reached_bytes);
  f.walked_bytes = static_cast<double>(s.heap_bytes);
  f.ms_per_gib_scanned =
      f.scanned_bytes > 0 ? f.scan_ms / (f.scanned_bytes / kGiB) : 0;
  f.ms_per_gib_walked =
      f.walked_bytes > 0 ? f.scan_ms / (f.walked_bytes / kGiB) : 0;
  f.pause_ms = s.pause_ns / 1e6;
  f.threads = s.threads;
  f.snapshot_rss_bytes = static_cast<double>(s.snapshot_max_rss_kb) * 1024;
  f.host_rss_before = static_cast<double>(rss_before);
  f.host_rss_after = static_cast<double>(rss_after);
  return f;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Figures MedianOf(const std::vector<Figures>& runs) {
  static constexpr double Figures::*kFields[] = {&Figures::scan_ms,
                                                 &Figures::scanned_bytes,
                                                 &Figures::root_bytes,
                                                 &Figures::walked_bytes,
                                                 &Figures::ms_per_gib_scanned,
                                                 &Figures::ms_per_gib_walked,
                                                 &Figures::pause_ms,
                                                 &Figures::threads,
                                                 &Figures::snapshot_rss_bytes,
                                                 &Figures::host_rss_before,
                                                 &Figures::host_rss_after};
  Figures m;
  for (double Figures::*field : kFields) {
    std::vector<double> v;
    for (const Figures& f : runs) v.push_back(f.*field);
    m.*field = Median(v);
  }
  return m;
}

void PrintFigures(const char* what, long heap_mib, const Figures& f,
                  const char* tail) {
  char scanned[32], roots[32], walked[32], snapshot[32], before[32], after[32];
  std::printf(
      "reach_bench: %s: heap %ld MiB, scanned %s (roots %s) in %.0f ms "
      "(%.0f ms/GiB), heap walked %s (%.0f ms/GiB), pause %.1f ms "
      "(%.0f threads), snapshot peak RSS %s, host RSS %s before, %s after%s\n",
      what, heap_mib, Size(f.scanned_bytes, scanned, sizeof scanned),
      Size(f.root_bytes, roots, sizeof roots), f.scan_ms, f.ms_per_gib_scanned,
      Size(f.walked_bytes, walked, sizeof walked), f.ms_per_gib_walked,
      f.pause_ms, f.threads,
      Size(f.snapshot_rss_bytes, snapshot, sizeof snapshot),
      Size(f.host_rss_before, before, sizeof before),
      Size(f.host_rss_after, after, sizeof after), tail);
  std::fflush(stdout);
}

// Compares the verdicts with the expectations; lists the wrong ones (up to
// 20) on stderr and returns how many there were.
size_t CheckVerdicts() {
  size_t wrong = 0;
  for (size_t i = 0; i < g_keys.count(); ++i) {
    const Expected& e = g_keys.expected()[i];
    Reach want = IsReachable(e.placement) ? Reach::kReachable : Reach::kLost;
    Reach got = g_keys.verdicts()[i];
    if (got == want) continue;
    if (++wrong <= 20) {
      std::fprintf(stderr,
                   "reach_bench: handle at 0x%" PRIxPTR
                   " (thread %d, %s): %s, expected %s\n",
                   e.address, e.part, PlacementName(e.placement),
                   ReachName(got), ReachName(want));
    }
  }
  return wrong;
}

int Main(int argc, char** argv) {
  long heap_mib = 1024, handles = 1000, idle = 8, reps = 3;
  long* args[] = {&heap_mib, &handles, &idle, &reps};
  const long lo[] = {16, 2, 0, 1};
  const long hi[] = {16384, static_cast<long>(kMaxHandles), 1000, 100};
  if (argc > 5) {
    std::fprintf(stderr,
                 "usage: reach_bench [HEAP_MIB [HANDLES [IDLE_THREADS "
                 "[REPS]]]]\n");
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    if (!ParseArg(argv[i], lo[i - 1], hi[i - 1], args[i - 1])) {
      std::fprintf(stderr, "reach_bench: argument %d (%s) must be %ld..%ld\n",
                   i, argv[i], lo[i - 1], hi[i - 1]);
      return 2;
    }
  }
  std::setvbuf(stdout, g_stdout_buffer, _IOLBF, sizeof g_stdout_buffer);
  if (!g_keys.Map(static_cast<size_t>(handles))) {
    std::fprintf(stderr, "reach_bench: cannot map the keys\n");
    return 2;
  }

  std::vector<pthread_t> threads;
  for (long i = 0; i < idle; ++i) {
    pthread_t t;
    if (pthread_create(&t, nullptr, &IdleMain, nullptr) != 0) {
      std::fprintf(stderr, "reach_bench: cannot start a thread\n");
      return 2;
    }
    threads.push_back(t);
  }

  int64_t build_start = NowNs();
  size_t budget = static_cast<size_t>(heap_mib) << 20;
  for (int p = 0; p < kParts; ++p) {
    g_parts[p] = new (Alloc(sizeof(Part), 0)) Part();
    g_parts[p]->index = p;
    g_parts[p]->budget = budget / kParts;
    g_parts[p]->handle_count =
        (static_cast<size_t>(handles) + kParts - 1 - p) / kParts;
  }
  for (int p = 1; p < kParts; ++p) {
    pthread_t t;
    if (pthread_create(&t, nullptr, &WorkerMain, g_parts[p]) != 0) {
      std::fprintf(stderr, "reach_bench: cannot start a thread\n");
      return 2;
    }
    threads.push_back(t);
  }
  BuildPart(g_parts[0]);
  pthread_mutex_lock(&g_mu);
  while (g_built < kWorkers) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  g_keys.Sort();
  double build_s = (NowNs() - build_start) / 1e9;

  size_t live = 0, blocks = 0, entries = 0, arrays = 0, larges = 0, leaked = 0,
         freed = 0, pointers = 0;
  for (const Part* part : g_parts) {
    live += part->live;
    blocks += part->blocks;
    entries += part->entries;
    arrays += part->arrays;
    larges += part->larges;
    leaked += part->leaked;
    freed += part->freed;
    pointers += part->pointers;
  }
  struct mallinfo2 mi = mallinfo2();
  std::fprintf(stderr,
               "reach_bench: built in %.2f s by %d threads: %.0f MiB live in "
               "%zu blocks (%zu hash table entries with a value each, %zu "
               "pointer arrays, %zu large blocks) holding %.1f M pointers "
               "(%.1f%% of their words), %zu leaked, %zu freed; malloc: %.0f "
               "MiB in arenas (%.0f MiB free), %zu mmapped blocks (%.0f MiB); "
               "%ld handles (%ld reachable, %ld lost); %ld idle threads\n",
               build_s, kParts, live / kMiB, blocks, entries, arrays, larges,
               pointers / 1e6, 100.0 * pointers / (live / 8.0), leaked, freed,
               mi.arena / kMiB, mi.fordblks / kMiB, mi.hblks, mi.hblkhd / kMiB,
               handles, (handles + 1) / 2, handles / 2, idle);

  std::vector<Figures> runs;
  size_t wrong_total = 0;
  bool failed = false;
  MemoryRange exclude = g_keys.Range();
  for (long rep = 1; rep <= reps; ++rep) {
    uint64_t rss_before = HostRssBytes();
    ReachStats stats;
    bool made =
        ScanReachability(g_keys.keys(), g_keys.count(), g_keys.verdicts(),
                         &exclude, 1, kScanTimeoutMs, &stats);
    uint64_t rss_after = HostRssBytes();
    if (!made) {
      std::fprintf(stderr, "reach_bench: scan %ld made no verdicts: %s\n", rep,
                   stats.failure);
      failed = true;
      break;
    }
    size_t wrong = CheckVerdicts();
    wrong_total += wrong;
    Figures f = FiguresOf(stats, rss_before, rss_after);
    runs.push_back(f);
    char what[64], tail[64];
    std::snprintf(what, sizeof what, "scan %ld/%ld", rep, reps);
    if (wrong == 0) {
      std::snprintf(tail, sizeof tail, ", verdicts ok");
    } else {
      std::snprintf(tail, sizeof tail, ", %zu WRONG VERDICTS of %zu", wrong,
                    g_keys.count());
    }
    PrintFigures(what, heap_mib, f, tail);
  }
  if (!runs.empty()) {
    char what[32];
    std::snprintf(what, sizeof what, "median of %zu", runs.size());
    PrintFigures(
        what, heap_mib, MedianOf(runs),
        wrong_total == 0 && !failed ? ", verdicts ok" : ", verdicts WRONG");
  }

  pthread_mutex_lock(&g_mu);
  g_stop = true;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  for (pthread_t t : threads) pthread_join(t, nullptr);
  return failed || wrong_total != 0 ? 1 : 0;
}

}  // namespace
}  // namespace leakwatch

int main(int argc, char** argv) { return leakwatch::Main(argc, argv); }
