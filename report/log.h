// Where reports go: stderr, or the file named by LEAKWATCH_LOG (`%p` becomes
// the pid), opened for append. Each Write() is one write(2) of a whole event,
// so events from several processes appending to one file never interleave
// within an event.
//
// Thread safety: Write may be called from several threads; the report module
// serialises its calls anyway. Not for use inside hooks.
#ifndef LEAKWATCH_REPORT_LOG_H_
#define LEAKWATCH_REPORT_LOG_H_

#include <sys/types.h>

#include <string>
#include <string_view>

namespace leakwatch {

class Log {
 public:
  // `path_pattern` empty = stderr. The file is opened on first write (and
  // again in a forked child if the pattern contains %p).
  explicit Log(std::string path_pattern);
  ~Log();  // closes the file (a `leakwatch attach` session's end)
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Writes `text` whole. Returns false (once said on stderr) if the log file
  // cannot be opened; the text then goes to stderr.
  bool Write(std::string_view text);

  // Writes `text` to the log if it is already open in this process, else to
  // stderr, without allocating (for a thread that may be inside malloc).
  void WriteIfOpen(std::string_view text);

  // Expands %p (pid) and %% in a path pattern.
  static std::string ExpandPath(const std::string& pattern, pid_t pid);

 private:
  int OpenIfNeeded();

  std::string pattern_;
  int fd_ = -1;
  pid_t opened_for_ = 0;
  bool failed_ = false;
};

// Writes all of `text` to `fd`, retrying on EINTR and short writes.
bool WriteAll(int fd, std::string_view text);

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_LOG_H_
