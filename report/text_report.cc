// The text renderer: live warnings in the style of HikariCP's leak log, the
// exit report in the style of LeakSanitizer, misuse reports with three
// stacks. Every line starts with "leakwatch[PID]: "; stacks are indented.
#include <errno.h>  // program_invocation_name (GNU)
#include <fmt/format.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "report/render.h"
#include "tracker/clock.h"
#include "tracker/reach.h"

namespace leakwatch {
namespace {

// Threads are created, handles acquired.
const char* AcquiredWord(const Record& r) {
  if (r.flags & kAdopted) return "first used after the attach";
  return r.kind->family == Family::kThread ? "created" : "acquired";
}

// How long a handle has been held: for one acquired before `leakwatch
// attach`, at least since the attach.
std::string HeldFor(const Record& r, int64_t now_ns) {
  std::string held = FormatDuration(now_ns - r.acquired_ns);
  if (r.flags & kAdopted) {
    return "more than " + held + " (acquired before attach, stack unknown)";
  }
  return held;
}

class TextRenderer : public Renderer {
 public:
  using Renderer::Renderer;

  std::string RenderScan(const ScanModel& model) override;
  std::string RenderHeld(const HeldModel& model) override;
  std::string RenderMisuse(const Misuse& misuse) override;
  std::string RenderNotice(std::string_view what,
                           std::string_view text) override;
  // Samples are for the JSON log's timeline; the text log has none.
  std::string RenderSample(const SampleModel&) override { return ""; }

 private:
  std::string Prefix() const {
    return fmt::format("leakwatch[{}]: ", ctx_.pid());
  }
  void AppendStack(std::string* out, uint32_t stack_id);
  void AppendIdentity(std::string* out, const Record& r);
  // "<kind> 0x<key> held 1.2 s (threshold 1 s) by thread N, <identity>";
  // `live`: as a live warning (with the threshold), else as an example.
  std::string Describe(const Held& h, int64_t now_ns, bool live);
  std::string DescribeThread(const Record& r, int64_t now_ns, bool live);
  void AppendWarnings(std::string* out, const ScanModel& model);
  void AppendGrowth(std::string* out, const SiteGrowth& g, int64_t now_ns);
  void AppendNote(std::string* out, const ScanModel::Note& entry);
  void AppendGroup(std::string* out, const HeldModel& model,
                   const HeldModel::Group& g, const char* held_where);
  void AppendExitTrailer(std::string* out, const HeldModel& model);
  void AppendReachable(std::string* out, const HeldModel& model);
  std::string WhereAcquired(uint32_t stack_id);
  std::string Totals(const HeldModel& model);
};

void TextRenderer::AppendStack(std::string* out, uint32_t stack_id) {
  Depot<uintptr_t>::View frames = ctx_.Stack(stack_id);
  if (frames.size == 0) {
    out->append("    (no stack: LEAKWATCH_STACK_DEPTH=0 or capture failed)\n");
    return;
  }
  // A frame with inlined calls is several lines with its number, innermost
  // first, each inlined one marked (as LSan and llvm-symbolizer -i show it).
  auto to = std::back_inserter(*out);
  for (uint32_t i = 0; i < frames.size; ++i) {
    for (const SymbolizedFrame& f : ctx_.Frames(frames.data[i])) {
      if (!f.script.empty()) {  // "#3 in main leaky.py:12 [python]"
        fmt::format_to(to, "    #{} in {} {}:{} [{}]\n", i,
                       f.function.empty() ? "??" : f.function,
                       f.file.empty() ? "??" : f.file, f.line, f.script);
        continue;
      }
      fmt::format_to(to, "    #{} 0x{:x} in {}", i, frames.data[i],
                     f.function.empty() ? "??" : f.function);
      if (!f.file.empty()) {
        fmt::format_to(to, " {}", f.file);
        if (f.line > 0) fmt::format_to(to, ":{}", f.line);
      }
      if (!f.module.empty()) {
        fmt::format_to(to, " ({}+0x{:x})", f.module, f.module_offset);
      }
      if (f.inlined) out->append(" [inlined]");
      out->push_back('\n');
    }
  }
}

void TextRenderer::AppendIdentity(std::string* out, const Record& r) {
  std::string text(ctx_.String(r.identity.string_id));
  if (r.identity.detail != 0 && r.kind->detail_label != nullptr) {
    if (!text.empty()) text += ' ';
    text += fmt::format("{}={}", r.kind->detail_label, r.identity.detail);
  }
  if (r.identity.connect_failed) {
    text += text.empty() ? "(connection failed)" : " (connection failed)";
  }
  if (r.parent != 0) {
    fmt::format_to(std::back_inserter(*out), ", from connection 0x{:x}",
                   r.parent);
    if (!text.empty()) fmt::format_to(std::back_inserter(*out), " ({})", text);
  } else if (!text.empty()) {
    fmt::format_to(std::back_inserter(*out), ", {}", text);
  }
}

std::string TextRenderer::DescribeThread(const Record& r, int64_t now_ns,
                                         bool live) {
  std::string out = fmt::format("{} 0x{:x} (", r.kind->name, r.key);
  if (r.identity.detail != 0) {
    fmt::format_to(std::back_inserter(out), "tid {}, ", r.identity.detail);
  }
  fmt::format_to(std::back_inserter(out),
                 "start routine {}, created by thread {}) ",
                 ctx_.StartRoutine(r.code), r.tid);
  if (live) {
    fmt::format_to(std::back_inserter(out),
                   "exited {} ago and was never joined (threshold {})",
                   FormatDuration(now_ns - r.active_ns),
                   FormatDuration(ctx_.ThresholdMs(Family::kThread) * 1000000));
  } else {
    fmt::format_to(std::back_inserter(out), "held {}, ",
                   FormatDuration(now_ns - r.acquired_ns));
    if (r.flags & kExited) {
      fmt::format_to(std::back_inserter(out), "exited {} ago",
                     FormatDuration(now_ns - r.active_ns));
    } else {
      out += "still running";
    }
  }
  return out;
}

std::string TextRenderer::Describe(const Held& h, int64_t now_ns, bool live) {
  const Record& r = h.record;
  if (r.kind->family == Family::kThread) return DescribeThread(r, now_ns, live);
  const std::string threshold =
      FormatDuration(ctx_.ThresholdMs(r.kind->family) * 1000000);
  const bool idle_rule = FamilyUsesIdleTime(r.kind->family);
  std::string out;
  auto to = std::back_inserter(out);
  if (idle_rule) {
    fmt::format_to(to, "{} 0x{:x} idle {}", r.kind->name, r.key,
                   FormatDuration(now_ns - r.active_ns));
    const std::string held = HeldFor(r, now_ns);
    if (live) {
      fmt::format_to(to, " (threshold {}, held {})", threshold, held);
    } else {
      fmt::format_to(to, ", held {}", held);
    }
  } else {
    fmt::format_to(to, "{} 0x{:x} held {}", r.kind->name, r.key,
                   HeldFor(r, now_ns));
    if (live) fmt::format_to(to, " (threshold {})", threshold);
  }
  fmt::format_to(to, " by thread {}", r.tid);
  if (h.finding == Finding::kGrowingSite) {
    fmt::format_to(to, ", idle {} and never used again (growing site)",
                   FormatDuration(now_ns - r.active_ns));
  }
  const auto reach = static_cast<Reach>(r.reach);
  if (h.finding == Finding::kLost || (!live && reach == Reach::kLost)) {
    out += ", lost (no pointer to it is left)";
  } else if (h.finding == Finding::kIndirectlyLost ||
             (!live && reach == Reach::kIndirectlyLost)) {
    out += ", indirectly lost (only lost handles point to it)";
  } else if (live && h.finding == Finding::kIdleTooLong &&
             (r.flags & kReused)) {
    out += ", no longer used while its site's others are";
  }
  if (r.flags & kPinsParent) out += ", unbuffered, pins its connection";
  if (live && h.finding == Finding::kOutlivedParent) {
    out += ", outlived its connection";
  }
  AppendIdentity(&out, r);
  std::string_view query = ctx_.String(r.query_id);
  if (!query.empty()) {
    fmt::format_to(to, ", {}: {}", idle_rule ? "last SQL" : "SQL", query);
  }
  return out;
}

void TextRenderer::AppendWarnings(std::string* out, const ScanModel& model) {
  const std::string prefix = Prefix();
  auto to = std::back_inserter(*out);
  for (const ScanModel::Site& site : model.sites) {
    for (size_t i = 0; i < site.shown.size(); ++i) {
      const Record& r = site.shown[i].record;
      std::string line = prefix + Describe(site.shown[i], model.now_ns, true);
      if (r.stack_id == 0) {
        *out += line + "\n";
        AppendStack(out, 0);
      } else if (i == 0 && site.stack_new) {
        fmt::format_to(to, "{}, {} at (site {}):\n", line, AcquiredWord(r),
                       r.stack_id);
        AppendStack(out, r.stack_id);
      } else {
        fmt::format_to(to, "{}, {} at site {} (stack shown above)\n", line,
                       AcquiredWord(r), r.stack_id);
      }
    }
    if (site.more > 0) {
      const Record& r = site.shown.front().record;
      fmt::format_to(to,
                     "{}... and {} more {} from site {} past the threshold\n",
                     prefix, site.more, r.kind->name, r.stack_id);
    }
  }
}

void TextRenderer::AppendGrowth(std::string* out, const SiteGrowth& g,
                                int64_t now_ns) {
  const Record& r = g.oldest;
  auto to = std::back_inserter(*out);
  if (r.kind->family != Family::kThread) {
    const bool conn = FamilyUsesIdleTime(r.kind->family);
    const char* what = conn                       ? "connections"
                       : r.kind->ends_with_parent ? "prepared statements"
                                                  : "statements";
    const char* made = conn ? "opened" : "prepared";
    const std::string threshold =
        FormatDuration(ctx_.ThresholdMs(r.kind->family) * 1000000);
    if (g.previous == 0) {
      fmt::format_to(to,
                     "{}growing {} site {}: {} {} idle and never used again "
                     "({} over {}, oldest {}, threshold {}), acquired at:\n",
                     Prefix(), r.kind->name, r.stack_id, g.count, what, made,
                     FormatDuration(g.span_ns),
                     FormatDuration(now_ns - r.acquired_ns), threshold);
      AppendStack(out, r.stack_id);
    } else {
      fmt::format_to(to,
                     "{}growing {} site {}: now {} {} idle and never used "
                     "again (doubled since the last warning; {} over {}, "
                     "oldest {})\n",
                     Prefix(), r.kind->name, r.stack_id, g.count, what, made,
                     FormatDuration(g.span_ns),
                     FormatDuration(now_ns - r.acquired_ns));
    }
    return;
  }
  if (g.previous == 0) {
    fmt::format_to(to,
                   "{}growing thread site {}: {} threads from one creation "
                   "site still running (created over {}, oldest {}, "
                   "threshold {}), start routine {}, created at:\n",
                   Prefix(), r.stack_id, g.count, FormatDuration(g.span_ns),
                   FormatDuration(now_ns - r.acquired_ns),
                   FormatDuration(ctx_.ThresholdMs(Family::kThread) * 1000000),
                   ctx_.StartRoutine(r.code));
    AppendStack(out, r.stack_id);
  } else {
    fmt::format_to(to,
                   "{}growing thread site {}: now {} threads still running "
                   "(doubled since the last warning; created over {}, "
                   "oldest {})\n",
                   Prefix(), r.stack_id, g.count, FormatDuration(g.span_ns),
                   FormatDuration(now_ns - r.acquired_ns));
  }
}

void TextRenderer::AppendNote(std::string* out, const ScanModel::Note& entry) {
  const Record& r = entry.note.record;
  const bool released = entry.note.type == LiveNote::kReleased;
  auto to = std::back_inserter(*out);
  if (entry.more > 0) {
    fmt::format_to(to, "{}... and {} more {} from site {} {}\n", Prefix(),
                   entry.more, r.kind->name, r.stack_id,
                   released ? "released" : "in use again");
  } else if (released) {
    fmt::format_to(to, "{}{} 0x{:x} reported above was released after {}\n",
                   Prefix(), r.kind->name, r.key,
                   FormatDuration(entry.note.at_ns - r.acquired_ns));
  } else {
    fmt::format_to(to,
                   "{}{} 0x{:x} reported above is in use again after {} "
                   "idle\n",
                   Prefix(), r.kind->name, r.key,
                   FormatDuration(entry.note.at_ns - r.active_ns));
  }
}

std::string TextRenderer::RenderScan(const ScanModel& model) {
  std::string out;
  AppendWarnings(&out, model);
  for (const SiteGrowth& g : model.growing) AppendGrowth(&out, g, model.now_ns);
  for (const ScanModel::Note& n : model.notes) AppendNote(&out, n);
  if (model.notes_dropped > 0) {
    fmt::format_to(std::back_inserter(out),
                   "{}{} release notes were dropped (queue full)\n", Prefix(),
                   model.notes_dropped);
  }
  return out;
}

// "; released only at interpreter shutdown" for a group with such members
// (how many, unless all).
std::string AtShutdown(const HeldModel::Group& g) {
  if (g.at_shutdown == 0) return "";
  if (g.at_shutdown == g.members.size()) {
    return "; released only at interpreter shutdown";
  }
  return fmt::format("; {} released only at interpreter shutdown",
                     g.at_shutdown);
}

std::string TextRenderer::RenderNotice(std::string_view what,
                                       std::string_view text) {
  return fmt::format("{}{}\n", Prefix(), text);
}

void TextRenderer::AppendGroup(std::string* out, const HeldModel& model,
                               const HeldModel::Group& g,
                               const char* held_where) {
  int64_t threshold_ms = ctx_.ThresholdMs(g.kind->family);
  std::string verdict =
      threshold_ms > 0
          ? fmt::format("{} past the {} {}threshold", g.past_threshold,
                        FormatDuration(threshold_ms * 1000000),
                        FamilyUsesIdleTime(g.kind->family) ? "idle " : "")
          : std::string("live threshold off");
  if (g.kind->family == Family::kThread) {
    size_t exited = g.members.size() - g.running;
    if (g.running == 0) {
      verdict += "; exited, never joined";
    } else if (exited == 0) {
      verdict = "growing site, still running";
    } else {
      verdict += fmt::format(
          "; {} exited, never joined, {} still running (growing site)", exited,
          g.running);
    }
  }
  if (g.growing > 0) {
    verdict += FamilyUsesIdleTime(g.kind->family)
                   ? fmt::format("; {} not idle that long yet, growing site",
                                 g.growing)
                   : fmt::format("; {} idle and never used again, growing site",
                                 g.growing);
  }
  if (g.lost > 0) verdict += fmt::format("; {} lost", g.lost);
  if (g.indirectly_lost > 0) {
    verdict += fmt::format("; {} indirectly lost", g.indirectly_lost);
  }
  if (g.pinned > 0) {
    verdict += fmt::format("; {} pinned by unbuffered results", g.pinned);
  }
  verdict += AtShutdown(g);
  fmt::format_to(std::back_inserter(*out),
                 "\n{}{} {} {} from site {} (oldest held {}; {}), "
                 "{}:\n",
                 Prefix(), g.members.size(), g.kind->name, held_where,
                 g.stack_id,
                 FormatDuration(model.now_ns - g.oldest_acquired_ns), verdict,
                 (g.example->record.flags & kAdopted)
                     ? "acquired before attach (stack unknown), first used "
                       "after the attach at"
                     : "acquired at");
  AppendStack(out, g.stack_id);
  std::string example = Describe(*g.example, model.now_ns, false);
  if (g.example_pins > 0) {
    example += fmt::format(", pinned by {} unbuffered result{}", g.example_pins,
                           g.example_pins == 1 ? "" : "s");
  }
  fmt::format_to(std::back_inserter(*out), "    example: {}\n", example);
}

std::string TextRenderer::RenderHeld(const HeldModel& model) {
  std::string out;
  if (model.at_exit) out += RenderScan(model.pending);
  if (!model.held.empty() || model.on_demand) {
    // At exit everything still held; periodically what is past a rule now.
    const char* held_where =
        model.at_exit ? "still held at exit" : "held past the threshold";
    size_t n = model.held.size();
    std::string what =
        model.at_exit ? "exit report"
        : model.on_demand
            ? fmt::format("report on demand (attached {} ago)",
                          FormatDuration(model.now_ns - model.session_ns))
            : "periodic report";
    fmt::format_to(std::back_inserter(out),
                   "{}{} for {}: {} handle{} {}, in {} group{} by acquisition "
                   "stack\n",
                   Prefix(), what, ProgramName(), n, n == 1 ? "" : "s",
                   held_where, model.groups.size(),
                   model.groups.size() == 1 ? "" : "s");
    for (const HeldModel::Group& g : model.groups) {
      AppendGroup(&out, model, g, held_where);
    }
    std::string totals;
    for (const auto& [name, count] : model.per_kind) {
      if (!totals.empty()) totals += ", ";
      totals += fmt::format("{} {}", count, name);
    }
    if (n > 0) {
      fmt::format_to(std::back_inserter(out),
                     "\n{}SUMMARY: {} handle{} {}: {}\n", Prefix(), n,
                     n == 1 ? "" : "s", held_where, totals);
    }
  }
  if (model.on_demand) {
    out += Prefix() + "since the attach: " + Totals(model) + "\n";
  }
  if (model.at_exit) AppendReachable(&out, model);
  if (model.at_exit) AppendExitTrailer(&out, model);
  return out;
}

// "pg.conn acquired 3 released 2, ...": the per-kind totals of a model.
std::string TextRenderer::Totals(const HeldModel& model) {
  std::string stats;
  for (int k = 0; k < kMaxKinds; ++k) {
    const KindDesc* kind = model.kinds[k];
    if (kind == nullptr) continue;
    if (!stats.empty()) stats += ", ";
    stats += fmt::format("{} acquired {} released {}", kind->name,
                         model.totals.acquired[k], model.totals.released[k]);
    if (model.totals.replaced[k] > 0) {
      stats += fmt::format(" replaced {}", model.totals.replaced[k]);
    }
    if (model.totals.adopted[k] > 0) {
      stats += fmt::format(
          " (and {} acquired before the attach, first used "
          "after it)",
          model.totals.adopted[k]);
    }
  }
  if (stats.empty()) stats = "no handles seen";
  if (model.unknown_releases > 0) {
    stats +=
        fmt::format(", releases of unknown handles {}", model.unknown_releases);
  }
  return stats;
}

// Still held at exit, still reachable, convicted by no rule: counts per
// group and where each was acquired, in a few lines.
void TextRenderer::AppendReachable(std::string* out, const HeldModel& model) {
  if (model.reachable.empty()) return;
  auto to = std::back_inserter(*out);
  size_t n = model.reachable.size();
  size_t groups = model.reachable_groups.size();
  std::string totals;
  for (const auto& [name, count] : model.reachable_per_kind) {
    if (!totals.empty()) totals += ", ";
    totals += fmt::format("{} {}", count, name);
  }
  fmt::format_to(to,
                 "{}still held at exit, reachable (not counted as leaks): {} "
                 "handle{} in {} group{} ({})\n",
                 Prefix(), n, n == 1 ? "" : "s", groups, groups == 1 ? "" : "s",
                 totals);
  for (const HeldModel::Group& g : model.reachable_groups) {
    fmt::format_to(to, "{}  {} {} from site {} (oldest held {}), acquired in ",
                   Prefix(), g.members.size(), g.kind->name, g.stack_id,
                   FormatDuration(model.now_ns - g.oldest_acquired_ns));
    *out += WhereAcquired(g.stack_id) + AtShutdown(g) + "\n";
  }
}

// "f (file.c:12) < g (file.c:40)": the innermost source-level frames of a
// stack, up to three. A script's stack starts at its innermost script frame
// outside the interpreter's and the drivers' libraries (the program's line),
// or at its innermost script frame if all are theirs.
std::string TextRenderer::WhereAcquired(uint32_t stack_id) {
  Depot<uintptr_t>::View frames = ctx_.Stack(stack_id);
  std::string out;
  int shown = 0;
  uint32_t first = 0;
  uint32_t first_script = frames.size;
  for (uint32_t i = 0; i < frames.size; ++i) {
    if (!IsScriptFrame(frames.data[i])) continue;
    if (first_script == frames.size) first_script = i;
    if (!IsLibraryScript(ctx_.Frames(frames.data[i]).front().file)) {
      first_script = i;
      break;
    }
  }
  if (first_script < frames.size) first = first_script;
  for (uint32_t i = first; i < frames.size && shown < 3; ++i) {
    for (const SymbolizedFrame& f : ctx_.Frames(frames.data[i])) {
      if (shown == 3) break;
      if (shown++ > 0) out += " < ";
      out += f.function.empty() ? "??" : f.function;
      if (!f.file.empty()) {
        out += fmt::format(" ({}:{})", f.file, f.line);
      } else if (!f.module.empty()) {
        out += fmt::format(" ({}+0x{:x})", f.module, f.module_offset);
      }
    }
  }
  return out.empty() ? std::string("(no stack)") : out;
}

// Misuses, suppressions, skipped shards and stats, after the exit report.
void TextRenderer::AppendExitTrailer(std::string* out, const HeldModel& model) {
  const std::string prefix = Prefix();
  auto to = std::back_inserter(*out);
  if (model.misuses > 0) {
    fmt::format_to(to,
                   "{}{} misuse report{} above (double release, use after "
                   "close)\n",
                   prefix, model.misuses, model.misuses == 1 ? "" : "s");
  }
  if (model.suppressed > 0) {
    fmt::format_to(to,
                   "{}suppressions used ({} still held at exit, not shown):\n",
                   prefix, model.suppressed);
    for (const Suppressions::Rule& rule : model.suppressions_used) {
      fmt::format_to(to, "{}  {} {}:{} ({})\n", prefix, rule.hits, rule.type,
                     rule.pattern, rule.where);
    }
  }
  if (model.shards_skipped > 0) {
    fmt::format_to(to,
                   "{}exit report incomplete: {} of {} table shards were "
                   "locked by interrupted threads and skipped\n",
                   prefix, model.shards_skipped, ShardedTable::kShards);
  }
  if (!ctx_.options().stats) return;
  std::string stats = Totals(model);
  fmt::format_to(to, "{}stats: {}", prefix, stats);
  if (model.dropped > 0) {
    fmt::format_to(to, " (dropped {} for lack of memory)", model.dropped);
  }
  out->push_back('\n');
}

std::string TextRenderer::RenderMisuse(const Misuse& m) {
  const ReleasedRecord& first = m.first;
  const KindDesc& kind = *first.kind;
  const bool twice = m.type == Misuse::kDoubleRelease;
  const char* closer = kind.family == Family::kConn ? "closed" : "released";
  const std::string prefix = Prefix();
  std::string out = fmt::format(
      "{}{}: {} on {} 0x{:x} by thread {}, {}{} {} ago by thread {}; this "
      "call at:\n",
      prefix, twice ? "double release" : "use after close", m.function,
      kind.name, first.key, m.tid, twice ? "already " : "", closer,
      FormatDuration(m.now_ns - first.released_ns), first.released_by);
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

}  // namespace

std::unique_ptr<Renderer> MakeTextRenderer(RenderContext& context) {
  return std::make_unique<TextRenderer>(context);
}

RenderContext::RenderContext(Tracker& tracker, Symbolizer& symbolizer)
    : tracker_(tracker),
      symbolizer_(symbolizer),
      pid_(getpid()),
      start_wall_ms_(WallClockMs()) {}

std::string RenderContext::StartRoutine(uintptr_t code) {
  if (code == 0) return "??";
  // The symbolizer looks up pc - 1 (return addresses); this is an entry point.
  const SymbolizedFrame& f = symbolizer_.Symbolize(code + 1);
  return f.function.empty() ? fmt::format("0x{:x}", code) : f.function;
}

std::string FormatDuration(int64_t ns) {
  if (ns < 0) ns = 0;
  int64_t ms = ns / 1000000;
  if (ms < 1000) return fmt::format("{} ms", ms);
  // Tenths of a second, truncated: 1999 ms is "1.9 s", 2000 ms is "2 s".
  int64_t tenths = ms / 100;
  if (tenths % 10 == 0) return fmt::format("{} s", tenths / 10);
  return fmt::format("{}.{} s", tenths / 10, tenths % 10);
}

const char* ProgramName() {
  return program_invocation_name != nullptr ? program_invocation_name : "?";
}

}  // namespace leakwatch
