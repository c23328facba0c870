#include "attach/remote.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace leakwatch {
namespace {

// The kernel's codes for a system call interrupted by a stop, which it
// restarts when the thread resumes (include/linux/errno.h, not exported).
constexpr long kRestartCodes[] = {
    -512 /* ERESTARTSYS */, -513 /* ERESTARTNOINTR */,
    -514 /* ERESTARTNOHAND */, -516 /* ERESTART_RESTARTBLOCK */};

// System calls a thread waits in without holding any of libc's locks.
constexpr long kWaitingCalls[] = {SYS_read,          SYS_poll,
                                  SYS_select,        SYS_pause,
                                  SYS_nanosleep,     SYS_accept,
                                  SYS_recvfrom,      SYS_recvmsg,
                                  SYS_wait4,         SYS_rt_sigtimedwait,
                                  SYS_rt_sigsuspend, SYS_futex,
                                  SYS_epoll_wait,    SYS_clock_nanosleep,
                                  SYS_pselect6,      SYS_ppoll,
                                  SYS_epoll_pwait,   SYS_accept4,
                                  SYS_waitid,        441 /* epoll_pwait2 */};

bool IsWaitingCall(long nr) {
  return std::find(std::begin(kWaitingCalls), std::end(kWaitingCalls), nr) !=
         std::end(kWaitingCalls);
}

// A read(2) waits for a peer only on a socket, a pipe, a terminal or an
// event fd; on a file it may be the loader reading a library.
bool FdWaitsForPeer(pid_t pid, long fd) {
  char link[64], target[256];
  std::snprintf(link, sizeof link, "/proc/%d/fd/%ld", pid, fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return std::strncmp(target, "socket:", 7) == 0 ||
         std::strncmp(target, "pipe:", 5) == 0 ||
         std::strncmp(target, "anon_inode:", 11) == 0 ||
         std::strncmp(target, "/dev/pts/", 9) == 0 ||
         std::strncmp(target, "/dev/tty", 8) == 0;
}

// The system call `tid` is blocked in, from /proc (without stopping it), or
// -1 if it is running or unknown.
long BlockedIn(pid_t pid, pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", pid, tid);
  std::ifstream in(path);
  std::string first;
  if (!(in >> first) || first.empty() || !std::isdigit(first[0])) return -1;
  return std::strtol(first.c_str(), nullptr, 10);
}

std::string ThreadName(pid_t pid, pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/comm", pid, tid);
  std::ifstream in(path);
  std::string name;
  std::getline(in, name);
  return name;
}

std::vector<pid_t> Threads(pid_t pid) {
  std::vector<pid_t> out;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR* dir = opendir(path);
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    if (std::isdigit(static_cast<unsigned char>(e->d_name[0]))) {
      out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
    }
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// Waits for `tid` to stop; `*status` is waitpid's. False if it is gone.
bool WaitStop(pid_t tid, int* status) {
  for (;;) {
    pid_t r = waitpid(tid, status, __WALL);
    if (r == tid) return WIFSTOPPED(*status);
    if (r < 0 && errno != EINTR) return false;
  }
}

bool WriteRemote(pid_t pid, uintptr_t addr, const void* data, size_t size) {
  iovec local{const_cast<void*>(data), size};
  iovec remote{reinterpret_cast<void*>(addr), size};
  return process_vm_writev(pid, &local, 1, &remote, 1, 0) ==
         static_cast<ssize_t>(size);
}

}  // namespace

double MonotonicSeconds() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec / 1e9;
}

bool ReadRemote(pid_t pid, uintptr_t addr, void* out, size_t size) {
  iovec local{out, size};
  iovec remote{reinterpret_cast<void*>(addr), size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) ==
         static_cast<ssize_t>(size);
}

bool ReadMappings(pid_t pid, std::vector<Mapping>* out, int* err) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) {
    *err = errno;
    return false;
  }
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    Mapping m;
    char perms[8] = {}, dev[16] = {};
    unsigned long long start, end, offset;
    int consumed = 0;
    if (std::sscanf(line, "%llx-%llx %7s %llx %15s %lu %n", &start, &end, perms,
                    &offset, dev, &m.inode, &consumed) < 6) {
      continue;
    }
    m.start = start;
    m.end = end;
    m.offset = offset;
    m.perms = perms;
    m.path = line + consumed;
    while (!m.path.empty() && (m.path.back() == '\n' || m.path.back() == ' ')) {
      m.path.pop_back();
    }
    out->push_back(m);
  }
  std::fclose(f);
  if (out->empty()) {
    *err = EACCES;  // a process we may not read shows no mappings
    return false;
  }
  return true;
}

uintptr_t LoadBase(const std::vector<Mapping>& maps, const std::string& path,
                   const std::string& file) {
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  Elf64_Ehdr eh;
  std::vector<Elf64_Phdr> phdrs;
  if (pread(fd, &eh, sizeof eh, 0) == static_cast<ssize_t>(sizeof eh) &&
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phnum < 256) {
    phdrs.resize(eh.e_phnum);
    size_t size = phdrs.size() * sizeof(Elf64_Phdr);
    if (pread(fd, phdrs.data(), size, static_cast<off_t>(eh.e_phoff)) !=
        static_cast<ssize_t>(size)) {
      phdrs.clear();
    }
  }
  close(fd);
  const uint64_t page = static_cast<uint64_t>(getpagesize()) - 1;
  for (const Mapping& m : maps) {
    if (m.path != path || m.perms.size() < 3 || m.perms[2] != 'x') continue;
    for (const Elf64_Phdr& ph : phdrs) {
      if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) &&
          (ph.p_offset & ~page) == m.offset) {
        return m.start - (ph.p_vaddr & ~page);
      }
    }
  }
  return 0;
}

uintptr_t SymbolValue(const std::string& file, const char* name) {
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 ||
      st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return 0;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return 0;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  uintptr_t value = 0;
  auto in_file = [&](uint64_t off, uint64_t len) {
    return off <= size && len <= size - off;
  };
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
      eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      in_file(eh->e_shoff, uint64_t{eh->e_shnum} * sizeof(Elf64_Shdr))) {
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    const Elf64_Shdr *dynsym = nullptr, *versym = nullptr;
    for (int i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type == SHT_DYNSYM) dynsym = &sh[i];
      if (sh[i].sh_type == SHT_GNU_versym) versym = &sh[i];
    }
    if (dynsym != nullptr && dynsym->sh_link < eh->e_shnum &&
        in_file(dynsym->sh_offset, dynsym->sh_size)) {
      const Elf64_Shdr& strtab = sh[dynsym->sh_link];
      const auto* syms =
          reinterpret_cast<const Elf64_Sym*>(base + dynsym->sh_offset);
      size_t count = dynsym->sh_size / sizeof(Elf64_Sym);
      const auto* vers =
          versym != nullptr && in_file(versym->sh_offset, count * 2)
              ? reinterpret_cast<const uint16_t*>(base + versym->sh_offset)
              : nullptr;
      for (size_t i = 1; i < count && in_file(strtab.sh_offset, strtab.sh_size);
           ++i) {
        const Elf64_Sym& s = syms[i];
        if (s.st_shndx == SHN_UNDEF || s.st_name >= strtab.sh_size) continue;
        const char* n =
            reinterpret_cast<const char*>(base + strtab.sh_offset + s.st_name);
        if (std::strcmp(n, name) != 0) continue;
        // The default version (not hidden), or an unversioned definition.
        if (vers != nullptr && (vers[i] & 0x8000) != 0) continue;
        value = s.st_value;
        break;
      }
    }
  }
  munmap(map, size);
  return value;
}

bool StoppedThread::TryThread(pid_t tid, std::string* why, bool* permission) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    if (errno == EPERM) *permission = true;
    *why = std::string("ptrace: ") + std::strerror(errno);
    return false;
  }
  int status = 0;
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 ||
      !WaitStop(tid, &status)) {
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    *why = "the thread ended";
    return false;
  }
  const double stopped_at = MonotonicSeconds();
  if ((status >> 16) != PTRACE_EVENT_STOP) {
    // A signal was on its way to the thread: it goes on its way.
    ptrace(PTRACE_DETACH, tid, nullptr,
           reinterpret_cast<void*>(static_cast<long>(WSTOPSIG(status))));
    *why = "a signal was being delivered";
    return false;
  }
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) {
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    *why = "cannot read its registers";
    return false;
  }
  const long nr = static_cast<long>(regs.orig_rax);
  const long rc = static_cast<long>(regs.rax);
  bool waiting = nr >= 0 && IsWaitingCall(nr) &&
                 std::find(std::begin(kRestartCodes), std::end(kRestartCodes),
                           rc) != std::end(kRestartCodes);
  if (waiting && nr == SYS_read) {
    waiting = FdWaitsForPeer(pid_, static_cast<long>(regs.rdi));
  }
  if (!waiting) {
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    *why = "it was not waiting in a system call";
    return false;
  }
  // The extended FPU state (x87, SSE, AVX...) the call may change.
  xstate_.assign(64 * 1024, 0);
  iovec iov{xstate_.data(), xstate_.size()};
  if (ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE),
             &iov) != 0) {
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    *why = "cannot read its FPU state";
    return false;
  }
  xstate_size_ = iov.iov_len;
  saved_ = regs;
  tid_ = tid;
  stopped_ = true;
  stopped_at_ = stopped_at;
  return true;
}

bool StoppedThread::Stop(pid_t pid, int wait_ms, std::string* error,
                         bool* permission) {
  pid_ = pid;
  *permission = false;
  const double give_up = MonotonicSeconds() + wait_ms / 1000.0;
  std::string why = "no thread was found";
  do {
    for (pid_t tid : Threads(pid)) {
      // Never one of the agent's own threads (they come and go).
      if (ThreadName(pid, tid) == "leakwatch") continue;
      long nr = BlockedIn(pid, tid);
      if (nr < 0 || !IsWaitingCall(nr)) continue;
      if (TryThread(tid, &why, permission)) return true;
      if (*permission) {
        *error = why;
        return false;
      }
    }
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, nullptr);
  } while (MonotonicSeconds() < give_up);
  *error =
      "no thread of the process waited in a system call (poll, recv, a "
      "lock, a sleep) for " +
      std::to_string(wait_ms / 1000) + " s (last: " + why +
      "); try again when it is less busy";
  return false;
}

bool StoppedThread::Call(uintptr_t fn, const std::vector<uintptr_t>& args,
                         const std::string& data, uintptr_t* result,
                         std::string* error) {
  if (!stopped_ || args.size() > 6) {
    *error = "no stopped thread";
    return false;
  }
  user_regs_struct regs = saved_;
  // Below the red zone (128 bytes) and a margin; 16-aligned data, then the
  // return address 0 so that the function starts with rsp % 16 == 8.
  uintptr_t at = (saved_.rsp - 512 - data.size() - 1) & ~uintptr_t{15};
  if (!data.empty() && !WriteRemote(tid_, at, data.c_str(), data.size() + 1)) {
    *error = "cannot write to its stack";
    return false;
  }
  uintptr_t sp = at - 8;
  uintptr_t zero = 0;
  if (!WriteRemote(tid_, sp, &zero, sizeof zero)) {
    *error = "cannot write to its stack";
    return false;
  }
  unsigned long long* arg_regs[] = {&regs.rdi, &regs.rsi, &regs.rdx,
                                    &regs.rcx, &regs.r8,  &regs.r9};
  for (size_t i = 0; i < args.size(); ++i) {
    *arg_regs[i] = args[i] == kDataAddress ? at : args[i];
  }
  regs.rsp = sp;
  regs.rip = fn;
  regs.rax = 0;
  regs.orig_rax = static_cast<unsigned long long>(-1);  // no syscall restart
  if (ptrace(PTRACE_SETREGS, tid_, nullptr, &regs) != 0 ||
      ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) {
    *error = "cannot start the call";
    return false;
  }
  for (;;) {
    int status = 0;
    if (!WaitStop(tid_, &status)) {
      stopped_ = false;
      *error = "the process ended during the call";
      return false;
    }
    int sig = WSTOPSIG(status);
    if ((status >> 16) == PTRACE_EVENT_STOP) {
      ptrace(PTRACE_CONT, tid_, nullptr, nullptr);  // a group stop: later
      continue;
    }
    if (sig == SIGSEGV) {
      user_regs_struct after;
      if (ptrace(PTRACE_GETREGS, tid_, nullptr, &after) != 0) {
        *error = "cannot read the result";
        return false;
      }
      if (after.rip == 0) {
        *result = after.rax;
        return true;
      }
      char where[300];
      std::snprintf(where, sizeof where,
                    "the call of 0x%lx faulted at 0x%llx (thread %d, stopped "
                    "in system call %lld at 0x%llx, rsp 0x%llx)",
                    static_cast<unsigned long>(fn), after.rip, tid_,
                    static_cast<long long>(saved_.orig_rax), saved_.rip,
                    saved_.rsp);
      *error = where;
      std::vector<Mapping> maps;
      int err = 0;
      if (getenv("LEAKWATCH_ATTACH_DEBUG") != nullptr &&
          ReadMappings(pid_, &maps, &err)) {
        for (const Mapping& m : maps) {
          if ((after.rip >= m.start && after.rip < m.end) ||
              (fn >= m.start && fn < m.end)) {
            *error += " [" + m.path + " " + m.perms + "]";
          }
        }
      }
      return false;
    }
    // Any other signal waits until the thread is let go.
    if (std::find(held_signals_.begin(), held_signals_.end(), sig) ==
        held_signals_.end()) {
      held_signals_.push_back(sig);
    }
    ptrace(PTRACE_CONT, tid_, nullptr, nullptr);
  }
}

bool StoppedThread::SaveErrno(uintptr_t errno_location, std::string* error) {
  uintptr_t at = 0;
  if (!Call(errno_location, {}, "", &at, error)) return false;
  if (at == 0 || !ReadRemote(pid_, at, &errno_, sizeof errno_)) {
    *error = "cannot read its errno";
    return false;
  }
  errno_at_ = at;
  return true;
}

std::string StoppedThread::ReadString(uintptr_t addr, size_t max) {
  std::string out;
  char buf[256];
  while (out.size() < max) {
    if (!ReadRemote(pid_, addr + out.size(), buf, sizeof buf)) break;
    size_t n = strnlen(buf, sizeof buf);
    out.append(buf, n);
    if (n < sizeof buf) break;
  }
  return out;
}

double StoppedThread::Release() {
  if (!stopped_) return 0;
  stopped_ = false;
  if (errno_at_ != 0) WriteRemote(tid_, errno_at_, &errno_, sizeof errno_);
  iovec iov{xstate_.data(), xstate_size_};
  ptrace(PTRACE_SETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &iov);
  ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_);
  long first = held_signals_.empty() ? 0 : held_signals_.front();
  ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(first));
  const double stopped = MonotonicSeconds() - stopped_at_;
  for (size_t i = 1; i < held_signals_.size(); ++i) {
    syscall(SYS_tgkill, pid_, tid_, held_signals_[i]);
  }
  held_signals_.clear();
  return stopped;
}

}  // namespace leakwatch
