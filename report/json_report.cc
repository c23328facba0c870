// LEAKWATCH_FORMAT=json: the same events as the text report, each one JSON
// object on one line (NDJSON), with a "type" field:
//
//   leak                  a handle past its threshold (live)
//   leak_more             the rest of a flooding site's handles in one scan
//   growing_thread_site   a thread creation site that keeps growing
//   released              a reported handle was released (slow, not leaked)
//   active_again          a connection reported idle was used again
//   notes_dropped         release notes lost (queue full)
//   exit_report           everything still held at exit, grouped by site
//
// Numbers are numbers (durations in ms), addresses are "0x..." strings.
// README.md, "JSON", documents every field.
#include <errno.h>  // program_invocation_name (GNU)
#include <time.h>
#include <unistd.h>

#include <map>
#include <string>

#include <fmt/format.h>

#include "report/metrics.h"
#include "report/text_report.h"
#include "tracker/clock.h"

namespace leakwatch {
namespace {

int64_t Ms(int64_t ns) { return ns < 0 ? 0 : ns / 1000000; }

}  // namespace

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string TextReporter::JsonFrames(uint32_t stack_id) {
  std::string out = "[";
  Depot<uintptr_t>::View frames = tracker_.stacks().Get(stack_id);
  // A pc with inlined calls gives consecutive objects with the same pc,
  // innermost first, the inlined ones with "inlined":true.
  for (uint32_t i = 0; i < frames.size; ++i) {
    tracker_.NoteExitProgress();
    for (const SymbolizedFrame& f :
         symbolizer_.SymbolizeInlined(frames.data[i])) {
      if (out.size() > 1) out += ',';
      fmt::format_to(std::back_inserter(out), "{{\"pc\":\"0x{:x}\"",
                     frames.data[i]);
      if (!f.function.empty()) {
        out += ",\"function\":" + JsonString(f.function);
      }
      if (!f.file.empty()) out += ",\"file\":" + JsonString(f.file);
      if (f.line > 0) {
        fmt::format_to(std::back_inserter(out), ",\"line\":{}", f.line);
      }
      if (!f.module.empty()) {
        out += ",\"module\":" + JsonString(f.module);
        fmt::format_to(std::back_inserter(out), ",\"offset\":\"0x{:x}\"",
                       f.module_offset);
      }
      if (f.inlined) out += ",\"inlined\":true";
      out += '}';
    }
  }
  out += ']';
  return out;
}

// The fields describing one record, without braces.
std::string TextReporter::JsonRecordFields(const Record& r, int64_t now_ns) {
  std::string out;
  const Family family = r.kind->family;
  fmt::format_to(std::back_inserter(out),
                 "\"kind\":{},\"family\":{},\"handle\":\"0x{:x}\",\"site\":{},"
                 "\"held_ms\":{},\"acquired_by_thread\":{}",
                 JsonString(r.kind->name), JsonString(FamilyName(family)),
                 r.key, r.stack_id, Ms(now_ns - r.acquired_ns), r.tid);
  int64_t threshold_ms = tracker_.options().ThresholdMs(family);
  fmt::format_to(std::back_inserter(out), ",\"threshold_ms\":{}", threshold_ms);
  if (family == Family::kThread) {
    out += ",\"start_routine\":" + JsonString(StartRoutine(r.code));
    if (r.identity.detail != 0) {
      fmt::format_to(std::back_inserter(out), ",\"tid\":{}", r.identity.detail);
    }
    if (r.flags & kExited) {
      fmt::format_to(std::back_inserter(out),
                     ",\"state\":\"exited\",\"exited_ms_ago\":{}",
                     Ms(now_ns - r.active_ns));
    } else {
      out += ",\"state\":\"running\"";
    }
    return out;
  }
  if (FamilyUsesIdleTime(family)) {
    fmt::format_to(std::back_inserter(out), ",\"idle_ms\":{}",
                   Ms(now_ns - r.active_ns));
  }
  if (r.parent != 0) {
    fmt::format_to(std::back_inserter(out), ",\"connection\":\"0x{:x}\"",
                   r.parent);
  }
  Depot<char>::View id = tracker_.strings().Get(r.identity.string_id);
  std::string identity(id.data, id.size);
  if (!identity.empty() || r.identity.detail != 0) {
    out += ",\"identity\":{";
    bool first = true;
    for (const auto& [key, value] : IdentityLabels(identity)) {
      if (!first) out += ',';
      first = false;
      out += JsonString(key) + ":" + JsonString(value);
    }
    if (r.identity.detail != 0 && r.kind->detail_label != nullptr) {
      if (!first) out += ',';
      fmt::format_to(std::back_inserter(out), "{}:{}",
                     JsonString(r.kind->detail_label), r.identity.detail);
    }
    out += '}';
    if (identity.find("(connection failed)") != std::string::npos) {
      out += ",\"connection_failed\":true";
    }
  }
  Depot<char>::View query = tracker_.strings().Get(r.query_id);
  if (query.size > 0) {
    out += ",\"sql\":" + JsonString(std::string_view(query.data, query.size));
  }
  if (r.flags & kPinsParent) out += ",\"unbuffered\":true";
  return out;
}

std::string TextReporter::FormatScanJson(const ScanEvents& events) {
  std::string out;
  const int64_t now_ms = WallClockMs();
  const std::string head =
      fmt::format("\"pid\":{},\"time_ms\":{}", pid_, now_ms);
  // Warnings, per site in order of first appearance, flood-limited as text.
  std::vector<uint64_t> order;
  std::map<uint64_t, std::vector<const Record*>> by_site;
  for (const Record& r : events.overdue) {
    if (SuppressionFor(r) >= 0) continue;
    auto [it, inserted] = by_site.try_emplace(SiteKey(r));
    if (inserted) order.push_back(SiteKey(r));
    it->second.push_back(&r);
  }
  for (uint64_t site : order) {
    const std::vector<const Record*>& records = by_site[site];
    size_t shown = 0;
    for (const Record* r : records) {
      if (shown == static_cast<size_t>(kWarningsPerSitePerScan)) break;
      ++shown;
      const char* reason =
          r->kind->family == Family::kThread ? "never_joined"
          : FamilyUsesIdleTime(r->kind->family) ? "idle_too_long"
          : r->kind->lives_with_parent && r->parent != 0 ? "outlived_parent"
                                                          : "held_too_long";
      fmt::format_to(std::back_inserter(out),
                     "{{\"type\":\"leak\",{},\"reason\":\"{}\",{},\"frames\":{}}}\n",
                     head, reason, JsonRecordFields(*r, events.now_ns),
                     JsonFrames(r->stack_id));
    }
    if (records.size() > shown) {
      const Record& r = *records.front();
      fmt::format_to(std::back_inserter(out),
                     "{{\"type\":\"leak_more\",{},\"kind\":{},\"site\":{},"
                     "\"count\":{}}}\n",
                     head, JsonString(r.kind->name), r.stack_id,
                     records.size() - shown);
    }
  }
  for (const SiteGrowth& g : events.growing) {
    const Record& r = g.oldest;
    if (SuppressionFor(r) >= 0) continue;
    fmt::format_to(
        std::back_inserter(out),
        "{{\"type\":\"growing_thread_site\",{},\"site\":{},\"count\":{},"
        "\"previous\":{},\"created_over_ms\":{},\"oldest_ms\":{},"
        "\"threshold_ms\":{},\"start_routine\":{},\"frames\":{}}}\n",
        head, r.stack_id, g.count, g.previous, Ms(g.span_ns),
        Ms(events.now_ns - r.acquired_ns),
        tracker_.options().ThresholdMs(Family::kThread),
        JsonString(StartRoutine(r.code)), JsonFrames(r.stack_id));
  }
  for (const LiveNote& note : events.notes) {
    const Record& r = note.record;
    if (SuppressionFor(r) >= 0) continue;
    if (note.type == LiveNote::kReleased) {
      fmt::format_to(std::back_inserter(out),
                     "{{\"type\":\"released\",{},\"kind\":{},\"handle\":\"0x{:x}"
                     "\",\"site\":{},\"after_ms\":{}}}\n",
                     head, JsonString(r.kind->name), r.key, r.stack_id,
                     Ms(note.at_ns - r.acquired_ns));
    } else {
      fmt::format_to(std::back_inserter(out),
                     "{{\"type\":\"active_again\",{},\"kind\":{},\"handle\":"
                     "\"0x{:x}\",\"site\":{},\"idle_ms\":{}}}\n",
                     head, JsonString(r.kind->name), r.key, r.stack_id,
                     Ms(note.at_ns - r.active_ns));
    }
  }
  if (events.notes_dropped > 0) {
    fmt::format_to(std::back_inserter(out),
                   "{{\"type\":\"notes_dropped\",{},\"count\":{}}}\n", head,
                   events.notes_dropped);
  }
  return out;
}

std::string TextReporter::FormatExitJson(const ExitSnapshot& snapshot) {
  return FormatHeldJson(snapshot, /*at_exit=*/true);
}

std::string TextReporter::FormatHeldJson(const ExitSnapshot& snapshot,
                                         bool at_exit) {
  std::string out;
  if (at_exit) {
    ScanEvents pending;
    pending.now_ns = snapshot.now_ns;
    pending.notes = snapshot.notes;
    out = FormatScanJson(pending);
  }
  ExitModel model = BuildExitModel(snapshot, at_exit);
  if (!at_exit && model.held.empty()) return out;
  size_t suppressed = 0;
  for (const Suppressions::Rule& rule : suppressions_.rules()) {
    suppressed += rule.hits;
  }
  // Nothing held and no stats asked for: no output at all, as in text.
  if (model.held.empty() && suppressed == 0 && snapshot.shards_skipped == 0 &&
      !tracker_.options().stats) {
    return out;
  }
  std::string report = at_exit ? "{\"type\":\"exit_report\""
                               : "{\"type\":\"periodic_report\"";
  fmt::format_to(std::back_inserter(report),
                 ",\"pid\":{},\"program\":{},\"start_time_ms\":{},"
                 "\"end_time_ms\":{}",
                 pid_,
                 JsonString(program_invocation_name != nullptr
                                ? program_invocation_name
                                : "?"),
                 start_wall_ms_, WallClockMs());
  report += ",\"options\":{";
  bool first = true;
  for (const auto& [name, value] : OptionValues(tracker_.options())) {
    if (!first) report += ',';
    first = false;
    report += JsonString(name) + ":" + JsonString(value);
  }
  fmt::format_to(std::back_inserter(report), "}},\"held\":{},\"groups\":[",
                 model.held.size());
  for (size_t i = 0; i < model.groups.size(); ++i) {
    const ExitGroup& g = model.groups[i];
    if (i > 0) report += ',';
    fmt::format_to(std::back_inserter(report),
                   "{{\"kind\":{},\"family\":{},\"count\":{},\"site\":{},"
                   "\"oldest_held_ms\":{},\"past_threshold\":{},"
                   "\"threshold_ms\":{}",
                   JsonString(g.kind->name),
                   JsonString(FamilyName(g.kind->family)), g.records.size(),
                   g.stack_id, Ms(snapshot.now_ns - g.oldest_acquired_ns),
                   g.past_threshold,
                   tracker_.options().ThresholdMs(g.kind->family));
    if (g.kind->family == Family::kThread) {
      fmt::format_to(std::back_inserter(report),
                     ",\"exited_never_joined\":{},\"running_growing_site\":{}",
                     g.records.size() - g.running, g.running);
    }
    if (g.pinned > 0) {
      fmt::format_to(std::back_inserter(report), ",\"pinned_connections\":{}",
                     g.pinned);
    }
    report += ",\"example\":{" + JsonRecordFields(*g.example, snapshot.now_ns);
    if (g.example_pins > 0) {
      fmt::format_to(std::back_inserter(report), ",\"pinned_by_results\":{}",
                     g.example_pins);
    }
    report += "},\"frames\":" + JsonFrames(g.stack_id) + "}";
  }
  report += "],\"summary\":{";
  first = true;
  for (const auto& [name, count] : model.per_kind) {
    if (!first) report += ',';
    first = false;
    fmt::format_to(std::back_inserter(report), "{}:{}", JsonString(name),
                   count);
  }
  fmt::format_to(std::back_inserter(report), "}},\"suppressed\":{}",
                 suppressed);
  report += ",\"suppressions_used\":[";
  first = true;
  for (const Suppressions::Rule& rule : suppressions_.rules()) {
    if (rule.hits == 0) continue;
    if (!first) report += ',';
    first = false;
    fmt::format_to(std::back_inserter(report),
                   "{{\"type\":{},\"pattern\":{},\"where\":{},\"count\":{}}}",
                   JsonString(rule.type), JsonString(rule.pattern),
                   JsonString(rule.where), rule.hits);
  }
  report += "],\"totals\":{";
  first = true;
  for (int k = 0; k < kMaxKinds; ++k) {
    const KindDesc* kind = snapshot.kinds[k];
    if (kind == nullptr) continue;
    if (!first) report += ',';
    first = false;
    fmt::format_to(std::back_inserter(report),
                   "{}:{{\"acquired\":{},\"released\":{},\"replaced\":{}}}",
                   JsonString(kind->name), snapshot.totals.acquired[k],
                   snapshot.totals.released[k], snapshot.totals.replaced[k]);
  }
  fmt::format_to(std::back_inserter(report),
                 "}},\"shards_skipped\":{},\"dropped\":{}}}\n",
                 snapshot.shards_skipped, snapshot.dropped);
  return out + report;
}

}  // namespace leakwatch
