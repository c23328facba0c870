// Where reports go: stderr, or the file named by LEAKWATCH_LOG (`%p` becomes
// the pid), opened for append; or the file of LEAKWATCH_JSON_LOG, a second
// log that never falls back to stderr. Each Write() is one write(2) of a
// whole event, so events from several processes appending to one file never
// interleave within an event.
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
  // again in a forked child if the pattern contains %p). `variable` names
  // the option in the message said when the file cannot be opened; without
  // `or_stderr`, what cannot go to the file is dropped rather than written
  // to stderr (a second log, beside one that goes there).
  explicit Log(std::string path_pattern, const char* variable = "LEAKWATCH_LOG",
               bool or_stderr = true);
  ~Log();  // closes the file (a `leakwatch attach` session's end)
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Writes `text` whole. Returns false (once said on stderr) if the log file
  // cannot be opened; the text then goes to stderr (or nowhere, without
  // `or_stderr`).
  bool Write(std::string_view text);

  // Writes `text` to the log if it is already open in this process, else to
  // stderr (or nowhere, without `or_stderr`), without allocating (for a
  // thread that may be inside malloc).
  void WriteIfOpen(std::string_view text);

  // Expands %p (pid) and %% in a path pattern.
  static std::string ExpandPath(const std::string& pattern, pid_t pid);

 private:
  int OpenIfNeeded();

  std::string pattern_;
  const char* variable_;
  bool or_stderr_;
  int fd_ = -1;
  pid_t opened_for_ = 0;
  bool failed_ = false;
};

// Writes all of `text` to `fd`, retrying on EINTR and short writes.
bool WriteAll(int fd, std::string_view text);

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_LOG_H_
