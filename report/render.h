// Renderers: a model (model.h) or a misuse in words. One renderer per
// LEAKWATCH_FORMAT: text (text_report.cc: HikariCP-style live lines and a
// LeakSanitizer-style exit report) and JSON (json_report.cc: one object per
// line, NDJSON). Both read the same models; they add words, not decisions.
//
// Thread safety: not thread-safe (the symbolizer is not); the Reporter calls
// them under its lock. Never from a hook, except RenderMisuse, which the
// Reporter calls from inside the hook that saw the misuse.
#ifndef LEAKWATCH_REPORT_RENDER_H_
#define LEAKWATCH_REPORT_RENDER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "report/model.h"
#include "report/symbolizer.h"
#include "tracker/tracker.h"

namespace leakwatch {

// What renderers look up besides the model: the depots and options of the
// tracker, symbols, and the process.
class RenderContext {
 public:
  RenderContext(Tracker& tracker, Symbolizer& symbolizer);
  RenderContext(const RenderContext&) = delete;
  RenderContext& operator=(const RenderContext&) = delete;

  const Options& options() const { return tracker_.options(); }
  pid_t pid() const { return pid_; }
  void set_pid(pid_t pid) { pid_ = pid; }
  // Wall-clock ms when the report module started.
  int64_t start_wall_ms() const { return start_wall_ms_; }
  // The threshold of a family, in ms (0 = off).
  int64_t ThresholdMs(Family family) const {
    return options().ThresholdMs(family);
  }

  Depot<uintptr_t>::View Stack(uint32_t stack_id) {
    return tracker_.stacks().Get(stack_id);
  }
  // The source-level frames of one return address (SymbolizeInlined); tells
  // the tracker the exit report is progressing.
  const std::vector<SymbolizedFrame>& Frames(uintptr_t pc) {
    tracker_.NoteExitProgress();
    return symbolizer_.SymbolizeInlined(pc);
  }
  // A thread's start routine, demangled ("??" if unknown).
  std::string StartRoutine(uintptr_t code);
  // An interned string ("" for id 0).
  std::string_view String(uint32_t id) {
    Depot<char>::View v = tracker_.strings().Get(id);
    return std::string_view(v.data, v.size);
  }

 private:
  Tracker& tracker_;
  Symbolizer& symbolizer_;
  pid_t pid_;
  int64_t start_wall_ms_;
};

class Renderer {
 public:
  explicit Renderer(RenderContext& context) : ctx_(context) {}
  virtual ~Renderer() = default;
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Each returns whole lines ("" if there is nothing to say).
  virtual std::string RenderScan(const ScanModel& model) = 0;
  virtual std::string RenderHeld(const HeldModel& model) = 0;
  virtual std::string RenderMisuse(const Misuse& misuse) = 0;
  // A line the agent says about itself (`what` names it for JSON).
  virtual std::string RenderNotice(std::string_view what,
                                   std::string_view text) = 0;
  // A sample of what is held (JSON only: the text renderer returns "").
  virtual std::string RenderSample(const SampleModel& model) = 0;

 protected:
  RenderContext& ctx_;
};

std::unique_ptr<Renderer> MakeTextRenderer(RenderContext& context);
std::unique_ptr<Renderer> MakeJsonRenderer(RenderContext& context);

// "1.2 s", "250 ms", "2 s": tenths of a second, truncated.
std::string FormatDuration(int64_t ns);

// A JSON string literal for `s` (Escape, in quotes).
std::string JsonString(std::string_view s);

// The running program's name, for report headers.
const char* ProgramName();

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_RENDER_H_
