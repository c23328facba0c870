// Calling a function inside another running process (x86-64 Linux).
//
// One thread of the target is stopped with ptrace (PTRACE_SEIZE, then
// PTRACE_INTERRUPT): only that thread; the others run on. It is taken only
// while it waits in a blocking system call (poll, recv, futex, a read on a
// socket or pipe, ...), where it holds none of libc's own locks, so what
// the injected call does (dlopen: the loader's lock, malloc) cannot wait on
// the very thread it runs on. The agent's own threads (named "leakwatch")
// are never taken. Its registers, and its FPU/SSE/AVX state, are
// saved; the call runs on its stack, below the red zone, and returns to
// address 0, whose fault stops the thread again; then everything is put
// back and the interrupted system call restarts as after any signal
// (orig_rax and the -ERESTART* code are restored with the rest).
//
// Signals that arrive for the thread during the call are held back and
// delivered when it is let go.
#ifndef LEAKWATCH_ATTACH_REMOTE_H_
#define LEAKWATCH_ATTACH_REMOTE_H_

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <string>
#include <vector>

namespace leakwatch {

// One line of /proc/PID/maps.
struct Mapping {
  uintptr_t start = 0, end = 0, offset = 0;
  unsigned long inode = 0;
  std::string perms, path;
};
bool ReadMappings(pid_t pid, std::vector<Mapping>* out, int* err);

// The load bias of the ELF object the loader mapped from `path` (`file`:
// where this process can read it), or 0. Found from its executable mapping
// and program headers: other mappings of the same file (a symbolizer's
// private copy of it) do not count.
uintptr_t LoadBase(const std::vector<Mapping>& maps, const std::string& path,
                   const std::string& file);

// The value (st_value) of the dynamic symbol `name` defined in the ELF file
// `file` (its default version), or 0.
uintptr_t SymbolValue(const std::string& file, const char* name);

// A thread of `pid` stopped for remote calls; let go by Release() or the
// destructor.
class StoppedThread {
 public:
  StoppedThread() = default;
  ~StoppedThread() { Release(); }
  StoppedThread(const StoppedThread&) = delete;
  StoppedThread& operator=(const StoppedThread&) = delete;

  // Stops a thread of `pid` that waits in a blocking system call, trying
  // for up to `wait_ms`. False with `*error` (one line) if none could be
  // had; `*permission` is set if ptrace itself was refused (errno EPERM).
  bool Stop(pid_t pid, int wait_ms, std::string* error, bool* permission);

  // Calls `fn(args...)` (up to 6 integer arguments) in the stopped thread;
  // `data` is copied (with its NUL) to its stack first, and an argument
  // kDataAddress stands for its address there. Returns false with `*error`
  // if the call could not be made or did not return.
  static constexpr uintptr_t kDataAddress = ~uintptr_t{0};
  bool Call(uintptr_t fn, const std::vector<uintptr_t>& args,
            const std::string& data, uintptr_t* result, std::string* error);

  // The thread's errno is kept across the calls (the injected ones may set
  // it): `errno_location` is the address of libc's __errno_location in the
  // process. False if it could not be read (then nothing is called).
  bool SaveErrno(uintptr_t errno_location, std::string* error);

  // Reads a NUL-terminated string of at most `max` bytes at `addr`.
  std::string ReadString(uintptr_t addr, size_t max);

  // Restores the thread and lets it go. Returns how long it was stopped.
  double Release();

  pid_t tid() const { return tid_; }

 private:
  bool TryThread(pid_t tid, std::string* why, bool* permission);

  pid_t pid_ = 0;
  pid_t tid_ = 0;
  bool stopped_ = false;
  user_regs_struct saved_{};
  std::vector<unsigned char> xstate_;
  size_t xstate_size_ = 0;
  std::vector<int> held_signals_;
  uintptr_t errno_at_ = 0;  // the thread's errno, kept (0: not kept)
  int errno_ = 0;
  double stopped_at_ = 0;
};

// Reads `size` bytes at `addr` in `pid` (process_vm_readv).
bool ReadRemote(pid_t pid, uintptr_t addr, void* out, size_t size);

// Seconds on CLOCK_MONOTONIC.
double MonotonicSeconds();

}  // namespace leakwatch

#endif  // LEAKWATCH_ATTACH_REMOTE_H_
