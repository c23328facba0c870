#include "report/log.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>

namespace leakwatch {

bool WriteAll(int fd, std::string_view text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

Log::Log(std::string path_pattern, const char* variable, bool or_stderr)
    : pattern_(std::move(path_pattern)),
      variable_(variable),
      or_stderr_(or_stderr) {}

Log::~Log() {
  if (fd_ >= 0 && opened_for_ == getpid()) close(fd_);
}

std::string Log::ExpandPath(const std::string& pattern, pid_t pid) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size()) {
      if (pattern[i + 1] == 'p') {
        out += std::to_string(pid);
        ++i;
        continue;
      }
      if (pattern[i + 1] == '%') {
        out += '%';
        ++i;
        continue;
      }
    }
    out += pattern[i];
  }
  return out;
}

int Log::OpenIfNeeded() {
  if (pattern_.empty() || failed_) return STDERR_FILENO;
  pid_t pid = getpid();
  if (fd_ >= 0 &&
      (opened_for_ == pid || pattern_.find("%p") == std::string::npos)) {
    return fd_;
  }
  if (fd_ >= 0 && opened_for_ != pid) {
    close(fd_);  // a forked child's copy of the parent's log
    fd_ = -1;
  }
  std::string path = ExpandPath(pattern_, pid);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    failed_ = true;
    std::string msg = std::string("leakwatch: cannot open ") + variable_ +
                      " file \"" + path + "\": " + strerror(err) +
                      (or_stderr_ ? "; reporting to stderr\n" : "\n");
    WriteAll(STDERR_FILENO, msg);
    return STDERR_FILENO;
  }
  fd_ = fd;
  opened_for_ = pid;
  return fd_;
}

bool Log::Write(std::string_view text) {
  int saved_errno = errno;
  int fd = OpenIfNeeded();
  bool ok = false;
  if (fd != STDERR_FILENO || !failed_) {
    ok = WriteAll(fd, text);
  } else if (or_stderr_) {
    WriteAll(fd, text);
  }
  errno = saved_errno;
  return ok;
}

void Log::WriteIfOpen(std::string_view text) {
  int saved_errno = errno;
  if (fd_ >= 0 && opened_for_ == getpid()) {
    WriteAll(fd_, text);
  } else if (or_stderr_) {
    WriteAll(STDERR_FILENO, text);
  }
  errno = saved_errno;
}

}  // namespace leakwatch
