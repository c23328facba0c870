// The JSON renderer (LEAKWATCH_FORMAT=json): the same models as the text
// renderer, each event one JSON object on one line (NDJSON), with a "type":
//
//   leak                  a handle past a rule (live)
//   leak_more             the rest of a flooding site's handles in one scan
//   growing_thread_site   a thread creation site that keeps growing
//   growing_connection_site   a connection site whose idle, never reused
//                         connections keep growing
//   growing_statement_site    a statement site (mysql.stmt, pg.prepared)
//                         whose idle, never reused statements keep growing
//   released              a reported handle was released (slow, not leaked)
//   active_again          a connection reported idle was used again
//   released_more, active_again_more   the rest of a site's notes in a scan
//   notes_dropped         release notes lost (queue full)
//   exit_report, periodic_report   what is held, grouped by site
//   misuse                a double release or a use after close
//   exit_abandoned        the exit report could not be written
//   sample                what is held now, per kind and for the sites
//                         warned about (the timeline of `leakwatch html`)
//
// Numbers are numbers (durations in ms), addresses are "0x..." strings.
// README.md, "JSON", documents every field.
#include <fmt/format.h>
#include <stdio.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "report/metrics.h"
#include "report/render.h"
#include "tracker/clock.h"
#include "tracker/escape.h"
#include "tracker/reach.h"

namespace leakwatch {
namespace {

int64_t Ms(int64_t ns) { return ns < 0 ? 0 : ns / 1000000; }

const char* ReasonName(Finding finding) {
  switch (finding) {
    case Finding::kHeldTooLong:
      return "held_too_long";
    case Finding::kIdleTooLong:
      return "idle_too_long";
    case Finding::kOutlivedParent:
      return "outlived_parent";
    case Finding::kNeverJoined:
      return "never_joined";
    case Finding::kGrowingSite:
      return "growing_site";
    case Finding::kLost:
      return "lost";
    case Finding::kIndirectlyLost:
      return "indirectly_lost";
    case Finding::kNone:
      break;
  }
  return "none";
}

// Appends `"key":value` pairs, separated by commas, to a JSON object being
// built; `after_fields`: the object already has fields.
class Fields {
 public:
  explicit Fields(std::string* out, bool after_fields = false)
      : out_(out), first_(!after_fields) {}
  void Raw(std::string_view key, std::string_view value) {
    if (!first_) out_->push_back(',');
    first_ = false;
    *out_ += JsonString(key);
    out_->push_back(':');
    *out_ += value;
  }
  void Str(std::string_view key, std::string_view value) {
    Raw(key, JsonString(value));
  }
  template <typename T>
  void Num(std::string_view key, T value) {
    Raw(key, fmt::format("{}", value));
  }
  void Hex(std::string_view key, uintptr_t value) {
    Raw(key, fmt::format("\"0x{:x}\"", value));
  }

 private:
  std::string* out_;
  bool first_;
};

class JsonRenderer : public Renderer {
 public:
  using Renderer::Renderer;

  std::string RenderScan(const ScanModel& model) override;
  std::string RenderHeld(const HeldModel& model) override;
  std::string RenderMisuse(const Misuse& misuse) override;
  std::string RenderNotice(std::string_view what,
                           std::string_view text) override;
  std::string RenderSample(const SampleModel& model) override;

 private:
  // `{"type":T,"pid":P,"time_ms":N` — an event's opening, without its end.
  std::string Open(const char* type) const {
    return fmt::format("{{\"type\":\"{}\",\"pid\":{},\"time_ms\":{}", type,
                       ctx_.pid(), WallClockMs());
  }
  // "program", "start_time_ms", with `end` "end_time_ms" (now), and
  // "options" (the options in force).
  void RunFields(Fields* f, bool end);
  std::string Frames(uint32_t stack_id);
  // The fields describing one record (no braces).
  void RecordFields(Fields* f, const Record& r, int64_t now_ns);
  void IdentityFields(Fields* f, const Record& r);
  void AppendNote(std::string* out, const ScanModel::Note& entry);
  std::string Group(const HeldModel& model, const HeldModel::Group& g);
  void ExitFields(Fields* f, const HeldModel& model);
};

std::string JsonRenderer::Frames(uint32_t stack_id) {
  std::string out = "[";
  Depot<uintptr_t>::View frames = ctx_.Stack(stack_id);
  // A pc with inlined calls gives consecutive objects with the same pc,
  // innermost first, the inlined ones with "inlined":true.
  for (uint32_t i = 0; i < frames.size; ++i) {
    for (const SymbolizedFrame& sf : ctx_.Frames(frames.data[i])) {
      if (out.size() > 1) out += ',';
      out += '{';
      Fields f(&out);
      if (sf.script.empty()) {
        f.Hex("pc", frames.data[i]);
      } else {
        f.Str("script", sf.script);  // a script frame has no address
      }
      if (!sf.function.empty()) f.Str("function", sf.function);
      if (!sf.file.empty()) f.Str("file", sf.file);
      if (sf.line > 0) f.Num("line", sf.line);
      if (!sf.module.empty()) {
        f.Str("module", sf.module);
        f.Hex("offset", sf.module_offset);
      }
      if (sf.inlined) f.Raw("inlined", "true");
      out += '}';
    }
  }
  out += ']';
  return out;
}

void JsonRenderer::IdentityFields(Fields* f, const Record& r) {
  std::string text(ctx_.String(r.identity.string_id));
  if (!text.empty() || r.identity.detail != 0) {
    std::string identity = "{";
    Fields id(&identity);
    for (const auto& [key, value] : IdentityLabels(text)) id.Str(key, value);
    if (r.identity.detail != 0 && r.kind->detail_label != nullptr) {
      id.Num(r.kind->detail_label, r.identity.detail);
    }
    identity += '}';
    f->Raw("identity", identity);
  }
  if (r.identity.connect_failed) f->Raw("connection_failed", "true");
}

void JsonRenderer::RecordFields(Fields* f, const Record& r, int64_t now_ns) {
  const Family family = r.kind->family;
  f->Str("kind", r.kind->name);
  f->Str("family", FamilyName(family));
  f->Hex("handle", r.key);
  f->Num("site", r.stack_id);
  f->Num("held_ms", Ms(now_ns - r.acquired_ns));
  f->Num("acquired_by_thread", r.tid);
  if (r.flags & kAdopted) f->Raw("acquired_before_attach", "true");
  f->Num("threshold_ms", ctx_.ThresholdMs(family));
  if (family == Family::kThread) {
    f->Str("start_routine", ctx_.StartRoutine(r.code));
    if (r.identity.detail != 0) f->Num("tid", r.identity.detail);
    if (r.flags & kExited) {
      f->Str("state", "exited");
      f->Num("exited_ms_ago", Ms(now_ns - r.active_ns));
    } else {
      f->Str("state", "running");
    }
    return;
  }
  if (FamilyUsesIdleTime(family) || r.kind->judged_by_growth) {
    f->Num("idle_ms", Ms(now_ns - r.active_ns));
    f->Raw("reused", (r.flags & kReused) ? "true" : "false");
  }
  switch (static_cast<Reach>(r.reach)) {
    case Reach::kReachable:
      f->Raw("reachable", "true");
      break;
    case Reach::kLost:
    case Reach::kIndirectlyLost:
      f->Raw("reachable", "false");
      break;
    case Reach::kUnknown:
      f->Raw("reachable", "null");
      break;
  }
  if (r.flags & kReleasedAtShutdown) f->Raw("released_at_shutdown", "true");
  if (r.parent != 0) f->Hex("connection", r.parent);
  IdentityFields(f, r);
  std::string_view query = ctx_.String(r.query_id);
  if (!query.empty()) f->Str("sql", query);
  if (r.flags & kPinsParent) f->Raw("unbuffered", "true");
}

void JsonRenderer::AppendNote(std::string* out, const ScanModel::Note& entry) {
  const Record& r = entry.note.record;
  const bool released = entry.note.type == LiveNote::kReleased;
  std::string line;
  if (entry.more > 0) {
    line = Open(released ? "released_more" : "active_again_more");
  } else {
    line = Open(released ? "released" : "active_again");
  }
  Fields f(&line, /*after_fields=*/true);
  f.Str("kind", r.kind->name);
  if (entry.more > 0) {
    f.Num("site", r.stack_id);
    f.Num("count", entry.more);
  } else {
    f.Hex("handle", r.key);
    f.Num("site", r.stack_id);
    if (released) {
      f.Num("after_ms", Ms(entry.note.at_ns - r.acquired_ns));
    } else {
      f.Num("idle_ms", Ms(entry.note.at_ns - r.active_ns));
    }
  }
  *out += line + "}\n";
}

std::string JsonRenderer::RenderScan(const ScanModel& model) {
  std::string out;
  for (const ScanModel::Site& site : model.sites) {
    for (const Held& h : site.shown) {
      std::string line = Open("leak");
      Fields f(&line, /*after_fields=*/true);
      f.Str("reason", ReasonName(h.finding));
      RecordFields(&f, h.record, model.now_ns);
      f.Raw("frames", Frames(h.record.stack_id));
      out += line + "}\n";
    }
    if (site.more > 0) {
      const Record& r = site.shown.front().record;
      out += Open("leak_more") +
             fmt::format(",\"kind\":{},\"site\":{},\"count\":{}}}\n",
                         JsonString(r.kind->name), r.stack_id, site.more);
    }
  }
  for (const SiteGrowth& g : model.growing) {
    const Record& r = g.oldest;
    if (r.kind->family != Family::kThread) {
      const bool conn = FamilyUsesIdleTime(r.kind->family);
      out += Open(conn ? "growing_connection_site" : "growing_statement_site") +
             fmt::format(
                 ",\"kind\":{},\"site\":{},\"count\":{},\"previous\":{},"
                 "\"{}\":{},\"oldest_ms\":{},\"threshold_ms\":"
                 "{},\"frames\":{}}}\n",
                 JsonString(r.kind->name), r.stack_id, g.count, g.previous,
                 conn ? "opened_over_ms" : "prepared_over_ms", Ms(g.span_ns),
                 Ms(model.now_ns - r.acquired_ns),
                 ctx_.ThresholdMs(r.kind->family), Frames(r.stack_id));
      continue;
    }
    out +=
        Open("growing_thread_site") +
        fmt::format(
            ",\"site\":{},\"count\":{},\"previous\":{},\"created_over_ms\":"
            "{},\"oldest_ms\":{},\"threshold_ms\":{},\"start_routine\":{},"
            "\"frames\":{}}}\n",
            r.stack_id, g.count, g.previous, Ms(g.span_ns),
            Ms(model.now_ns - r.acquired_ns), ctx_.ThresholdMs(Family::kThread),
            JsonString(ctx_.StartRoutine(r.code)), Frames(r.stack_id));
  }
  for (const ScanModel::Note& n : model.notes) AppendNote(&out, n);
  if (model.notes_dropped > 0) {
    out += Open("notes_dropped") +
           fmt::format(",\"count\":{}}}\n", model.notes_dropped);
  }
  return out;
}

std::string JsonRenderer::RenderNotice(std::string_view what,
                                       std::string_view text) {
  return fmt::format("{},\"what\":{},\"message\":{}}}\n", Open("notice"),
                     JsonString(what), JsonString(text));
}

std::string JsonRenderer::Group(const HeldModel& model,
                                const HeldModel::Group& g) {
  std::string out = "{";
  Fields f(&out);
  f.Str("kind", g.kind->name);
  f.Str("family", FamilyName(g.kind->family));
  f.Num("count", g.members.size());
  f.Num("site", g.stack_id);
  f.Num("oldest_held_ms", Ms(model.now_ns - g.oldest_acquired_ns));
  f.Num("past_threshold", g.past_threshold);
  f.Num("threshold_ms", ctx_.ThresholdMs(g.kind->family));
  if (g.kind->family == Family::kThread) {
    f.Num("exited_never_joined", g.members.size() - g.running);
    f.Num("running_growing_site", g.running);
  }
  if (g.growing > 0) f.Num("growing_site", g.growing);
  if (g.pinned > 0) f.Num("pinned_connections", g.pinned);
  f.Num("lost", g.lost);
  f.Num("indirectly_lost", g.indirectly_lost);
  if (g.at_shutdown > 0) f.Num("released_at_shutdown", g.at_shutdown);
  std::string example = "{";
  Fields e(&example);
  RecordFields(&e, g.example->record, model.now_ns);
  if (g.example_pins > 0) e.Num("pinned_by_results", g.example_pins);
  example += '}';
  f.Raw("example", example);
  f.Raw("frames", Frames(g.stack_id));
  out += '}';
  return out;
}

// The exit report's own fields, after `held` and `groups`.
void JsonRenderer::ExitFields(Fields* f, const HeldModel& model) {
  std::string summary = "{";
  Fields s(&summary);
  for (const auto& [name, count] : model.per_kind) s.Num(name, count);
  f->Raw("summary", summary + "}");
  f->Num("suppressed", model.suppressed);
  std::string used = "[";
  for (const Suppressions::Rule& rule : model.suppressions_used) {
    if (used.size() > 1) used += ',';
    used +=
        fmt::format("{{\"type\":{},\"pattern\":{},\"where\":{},\"count\":{}}}",
                    JsonString(rule.type), JsonString(rule.pattern),
                    JsonString(rule.where), rule.hits);
  }
  f->Raw("suppressions_used", used + "]");
  std::string totals = "{";
  Fields t(&totals);
  for (int k = 0; k < kMaxKinds; ++k) {
    const KindDesc* kind = model.kinds[k];
    if (kind == nullptr) continue;
    t.Raw(kind->name,
          fmt::format(
              "{{\"acquired\":{},\"released\":{},\"replaced\":{}{}}}",
              model.totals.acquired[k], model.totals.released[k],
              model.totals.replaced[k],
              model.totals.adopted[k] > 0
                  ? fmt::format(",\"adopted\":{}", model.totals.adopted[k])
                  : ""));
  }
  f->Raw("totals", totals + "}");
  f->Num("shards_skipped", model.shards_skipped);
  f->Num("dropped", model.dropped);
}

std::string JsonRenderer::RenderHeld(const HeldModel& model) {
  std::string out;
  if (model.at_exit) out = RenderScan(model.pending);
  if (!model.at_exit && !model.on_demand && model.held.empty()) return out;
  // Nothing held and no stats asked for: no output at all, as in text.
  if (model.held.empty() && model.reachable.empty() && model.suppressed == 0 &&
      model.shards_skipped == 0 && !ctx_.options().stats && !model.on_demand) {
    return out;
  }
  std::string report = model.at_exit     ? "{\"type\":\"exit_report\""
                       : model.on_demand ? "{\"type\":\"report\""
                                         : "{\"type\":\"periodic_report\"";
  Fields f(&report, /*after_fields=*/true);
  f.Num("pid", ctx_.pid());
  RunFields(&f, /*end=*/true);
  f.Num("held", model.held.size());
  std::string groups = "[";
  for (const HeldModel::Group& g : model.groups) {
    if (groups.size() > 1) groups += ',';
    groups += Group(model, g);
  }
  f.Raw("groups", groups + "]");
  if (model.at_exit) {
    f.Num("reachable", model.reachable.size());
    std::string reachable = "[";
    for (const HeldModel::Group& g : model.reachable_groups) {
      if (reachable.size() > 1) reachable += ',';
      reachable += Group(model, g);
    }
    f.Raw("reachable_groups", reachable + "]");
  }
  if (model.on_demand) {
    f.Num("attached_ms", Ms(model.now_ns - model.session_ns));
  }
  ExitFields(&f, model);
  return out + report + "}\n";
}

void JsonRenderer::RunFields(Fields* f, bool end) {
  f->Str("program", ProgramName());
  f->Num("start_time_ms", ctx_.start_wall_ms());
  if (end) f->Num("end_time_ms", WallClockMs());
  std::string options = "{";
  Fields o(&options);
  for (const auto& [name, value] : OptionValues(ctx_.options())) {
    o.Str(name, value);
  }
  f->Raw("options", options + "}");
}

std::string JsonRenderer::RenderSample(const SampleModel& model) {
  const OpenSample& counts = *model.counts;
  std::string out = Open("sample");
  Fields f(&out, /*after_fields=*/true);
  std::string open = "{";
  Fields o(&open);
  for (int k = 0; k < kMaxKinds; ++k) {
    if (counts.kinds[k] != nullptr)
      o.Num(counts.kinds[k]->name, counts.open[k]);
  }
  f.Raw("open", open + "}");
  std::string sites = "[";
  for (int i = 0; i < counts.num_sites; ++i) {
    const uint64_t key = counts.site_key[i];
    const KindDesc* kind = counts.kinds[(key >> 32) % kMaxKinds];
    if (kind == nullptr) continue;  // a site is of a kind seen
    if (sites.size() > 1) sites += ',';
    sites += fmt::format("{{\"site\":{},\"kind\":{},\"open\":{}}}",
                         static_cast<uint32_t>(key), JsonString(kind->name),
                         counts.site_open[i]);
  }
  f.Raw("sites", sites + "]");
  if (model.first) RunFields(&f, /*end=*/false);
  return out + "}\n";
}

std::string JsonRenderer::RenderMisuse(const Misuse& m) {
  const ReleasedRecord& first = m.first;
  const KindDesc& kind = *first.kind;
  std::string out = Open("misuse");
  Fields f(&out, /*after_fields=*/true);
  f.Str("what", m.type == Misuse::kDoubleRelease ? "double_release"
                                                 : "use_after_close");
  f.Str("function", m.function);
  f.Str("kind", kind.name);
  f.Str("family", FamilyName(kind.family));
  f.Hex("handle", first.key);
  f.Num("thread", m.tid);
  f.Num("first_released_ms_ago", (m.now_ns - first.released_ns) / 1000000);
  f.Num("first_released_by", first.released_by);
  f.Num("held_ms", (first.released_ns - first.acquired_ns) / 1000000);
  f.Num("site", first.acquire_stack_id);
  f.Raw("frames", Frames(m.stack_id));
  f.Raw("released_frames", Frames(first.release_stack_id));
  f.Raw("acquired_frames", Frames(first.acquire_stack_id));
  return out + "}\n";
}

}  // namespace

std::unique_ptr<Renderer> MakeJsonRenderer(RenderContext& context) {
  return std::make_unique<JsonRenderer>(context);
}

std::string JsonString(std::string_view s) { return '"' + Escape(s) + '"'; }

}  // namespace leakwatch
