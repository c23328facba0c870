// Reachability of handles: is any pointer to a handle left in the process?
// LeakSanitizer's idea applied to handles. A handle that no pointer refers to
// any more is *lost*: nobody can ever release it. One that is referenced only
// from lost handles' memory is *indirectly lost* (a MYSQL reachable only from
// a leaked MYSQL_RES). The rest are *reachable*.
//
// How (Linux, x86-64, glibc's malloc):
//   1. Stop the world: a tracer task that shares the address space (clone
//      with CLONE_VM, not a thread of the process) attaches every thread with
//      ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT: a blocking call is restarted
//      afterwards, no signal is delivered, errno is untouched) and reads its
//      registers.
//   2. Snapshot: the tracer forks; the child holds a copy-on-write image of
//      the whole address space at that instant. The tracer resumes every
//      thread at once: the host's pause is the attach, the register reads and
//      the fork.
//   3. Scan, in the child, without a lock or a malloc of the host's (only
//      system calls and memory of its own): roots are the writable private
//      mappings that are not glibc heaps (globals and .bss of every module,
//      thread stacks from their stack pointer up — live frames, TLS —,
//      anonymous mappings, which include other allocators' arenas such as
//      Python's) and the stopped threads' registers; glibc's heaps (the main
//      heap, thread arenas' heaps, mmapped chunks) are walked chunk by chunk
//      and a chunk's contents are scanned only once a pointer from reached
//      memory (interior pointers count) reaches it. A handle is reachable if
//      its memory is reached (a chunk reached, or inside a root). The agent's
//      own memory (`exclude`) is never read.
//   4. The verdicts come back through shared memory; a pipe says when.
// Without ptrace (not permitted, the process already traced), the scan is
// not made: verdicts stay kUnknown. A pointer the scan cannot see (kept only
// in the kernel — an epoll registration's data —, in a vector register, or
// stored disguised: XOR-ed, compressed, offset) makes a live handle look lost;
// a stale copy in memory still reachable (a freed block in malloc's caches
// that a dangling pointer reaches, a dead slot of a live structure) makes a
// lost one look reachable.
//
// Thread safety: one scan at a time (the watchdog's). Not for hooks.
#ifndef LEAKWATCH_TRACKER_REACH_H_
#define LEAKWATCH_TRACKER_REACH_H_

#include <cstddef>
#include <cstdint>

namespace leakwatch {

enum class Reach : uint8_t {
  kUnknown = 0,     // not decided: no scan, or its memory is not scanned
  kReachable,       // a pointer to it is left in reachable memory
  kLost,            // no pointer to it is left
  kIndirectlyLost,  // only lost handles' memory points to it
};

struct MemoryRange {
  uintptr_t begin;
  uintptr_t end;
};

struct ReachStats {
  int64_t pause_ns = 0;              // first thread stopped to last one resumed
  int64_t scan_ns = 0;               // the snapshot's scan
  uint64_t root_bytes = 0;           // root memory scanned
  uint64_t heap_bytes = 0;           // glibc heap walked (in use and free)
  uint64_t reached_bytes = 0;        // heap chunks reached and scanned
  uint64_t snapshot_max_rss_kb = 0;  // the snapshot's peak resident memory
                                     // (its own pages and the host's it
                                     // touched)
  uint32_t threads = 0;              // threads stopped and their registers read
  const char* failure = "";  // why no verdicts were made ("" if they were)
};

// Decides the reachability of `keys` (addresses of handles, sorted, no
// duplicates) and writes one verdict per key to `verdicts`. `exclude`: memory
// whose contents must not count (the agent's own). Blocks the calling thread
// until the scan is done or `timeout_ms` has passed (then the scan is killed
// and the verdicts are kUnknown). Returns true if verdicts were made.
bool ScanReachability(const uintptr_t* keys, size_t count, Reach* verdicts,
                      const MemoryRange* exclude, size_t exclude_count,
                      int64_t timeout_ms, ReachStats* stats);

// What ScanReachability learns by calling malloc (glibc's tcache key), done
// ahead, from a thread that may call malloc: a scan at exit may run while
// another thread is inside malloc.
void PrepareReachability();

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_REACH_H_
