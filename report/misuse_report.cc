// Misuse reports: a second release of a handle, a call on a closed
// connection. Written synchronously from inside the hook, before the real
// call: a double free may abort the process in the very next instruction.
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include "report/text_report.h"
#include "tracker/clock.h"

namespace leakwatch {

std::string TextReporter::FormatMisuse(const Misuse& m) {
  const ReleasedRecord& first = m.first;
  const KindDesc& kind = *first.kind;
  const bool twice = m.type == Misuse::kDoubleRelease;
  const char* closer =
      kind.family == Family::kConn ? "closed" : "released";
  if (tracker_.options().format == kFormatJson) {
    return fmt::format(
        "{{\"type\":\"misuse\",\"pid\":{},\"time_ms\":{},\"what\":\"{}\","
        "\"function\":{},\"kind\":{},\"family\":{},\"handle\":\"0x{:x}\","
        "\"thread\":{},\"first_released_ms_ago\":{},\"first_released_by\":{},"
        "\"held_ms\":{},\"site\":{},\"frames\":{},\"released_frames\":{},"
        "\"acquired_frames\":{}}}\n",
        pid_, WallClockMs(),
        twice ? "double_release" : "use_after_close", JsonString(m.function),
        JsonString(kind.name), JsonString(FamilyName(kind.family)), first.key,
        m.tid, (m.now_ns - first.released_ns) / 1000000, first.released_by,
        (first.released_ns - first.acquired_ns) / 1000000,
        first.acquire_stack_id, JsonFrames(m.stack_id),
        JsonFrames(first.release_stack_id), JsonFrames(first.acquire_stack_id));
  }
  std::string out;
  const std::string prefix = Prefix();
  if (twice) {
    fmt::format_to(std::back_inserter(out),
                   "{}double release: {} on {} 0x{:x} by thread {}, already "
                   "{} {} ago by thread {}; this call at:\n",
                   prefix, m.function, kind.name, first.key, m.tid, closer,
                   FormatDuration(m.now_ns - first.released_ns),
                   first.released_by);
  } else {
    fmt::format_to(std::back_inserter(out),
                   "{}use after close: {} on {} 0x{:x} by thread {}, {} {} "
                   "ago by thread {}; this call at:\n",
                   prefix, m.function, kind.name, first.key, m.tid, closer,
                   FormatDuration(m.now_ns - first.released_ns),
                   first.released_by);
  }
  AppendStack(&out, m.stack_id);
  fmt::format_to(std::back_inserter(out), "{}  {} at:\n", prefix,
                 twice ? "first released" : closer);
  AppendStack(&out, first.release_stack_id);
  fmt::format_to(std::back_inserter(out),
                 "{}  acquired at (site {}), held {}:\n", prefix,
                 first.acquire_stack_id,
                 FormatDuration(first.released_ns - first.acquired_ns));
  AppendStack(&out, first.acquire_stack_id);
  return out;
}


}  // namespace leakwatch
