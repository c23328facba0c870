#include "report/metrics.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <iterator>
#include <map>
#include <string_view>
#include <utility>

#include "report/log.h"

namespace leakwatch {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Every sample carries `pid` and `program`. node_exporter's textfile
// collector merges all *.prom files of its directory into one scrape;
// LD_PRELOAD is inherited, so several processes (a service and its children, or
// several instances of one program) may each write a file there. Without these
// two labels their series would be identical and the collector would refuse the
// whole scrape ("collected before with the same name and label values").
// HELP texts, in turn, never mention the process: the collector also requires
// one HELP text per metric name across all files.
constexpr const char* kReservedLabels[] = {"kind", "family", "pid", "program"};

struct KindFamily {
  const char* name;
  const char* type;
  const char* help;
  uint64_t KindMetrics::*field;
};

// Per kind. Counters end in _total; gauges never do.
constexpr KindFamily kKindFamilies[] = {
    {"leakwatch_handles_open", "gauge", "Handles of this kind held now.",
     &KindMetrics::open},
    {"leakwatch_handles_open_peak", "gauge",
     "Highest number of handles of this kind held at once, as seen by a "
     "watchdog scan since the process started.",
     &KindMetrics::peak_open},
    {"leakwatch_handles_acquired_total", "counter",
     "Handles of this kind acquired since the process started.",
     &KindMetrics::acquired},
    {"leakwatch_handles_released_total", "counter",
     "Handles of this kind released since the process started.",
     &KindMetrics::released},
    {"leakwatch_handles_past_threshold", "gauge",
     "Handles of this kind held now past their family's threshold "
     "(connections: idle past it). Above 0 means a leak is in progress.",
     &KindMetrics::past_threshold},
    {"leakwatch_leak_reports_total", "counter",
     "Live leak warnings given for handles of this kind since the process "
     "started.",
     &KindMetrics::reported_total},
};

struct ConnectionFamily {
  const char* name;
  const char* help;
  uint64_t ConnectionMetrics::*field;
};

// Per connection identity, like Go's DB.Stats(). Separate gauges rather than
// one gauge with a `state` label: the states overlap (an idle connection may
// also be pinned, and every one of them is open), so a `state` label would
// make sum() over it meaningless, which Prometheus' naming guide warns
// against.
constexpr ConnectionFamily kConnectionFamilies[] = {
    {"leakwatch_connections_open",
     "Open connections of this kind and identity.", &ConnectionMetrics::open},
    {"leakwatch_connections_idle",
     "Open connections of this kind and identity idle past the conn "
     "threshold.",
     &ConnectionMetrics::idle},
    {"leakwatch_connections_in_use",
     "Open connections of this kind and identity inside a blocking client "
     "call now.",
     &ConnectionMetrics::in_use},
    {"leakwatch_connections_pinned",
     "Open connections of this kind and identity pinned by an unfinished "
     "unbuffered result.",
     &ConnectionMetrics::pinned},
};

bool IsAsciiAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved for
// Prometheus' own labels).
std::string SanitizeLabelName(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 1);
  for (char c : name) {
    out += (IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '_') ? c : '_';
  }
  if (out.empty() || IsAsciiDigit(out[0])) out.insert(0, 1, '_');
  size_t underscores = out.find_first_not_of('_');
  if (underscores == std::string::npos) underscores = out.size();
  if (underscores > 1) out.erase(0, underscores - 1);
  return out;
}

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) {
    return k < s.size() && (byte(k) & 0xC0) == 0x80;
  };
  unsigned char b = byte(i);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (b == 0xE0 && byte(i + 1) < 0xA0) return 0;   // overlong
    if (b == 0xED && byte(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (b == 0xF0 && byte(i + 1) < 0x90) return 0;   // overlong
    if (b == 0xF4 && byte(i + 1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// A label value: `\`, `"` and newline escaped as the format requires; bytes
// that are not valid UTF-8 (Prometheus rejects the whole scrape for one)
// become U+FFFD.
void AppendLabelValue(std::string* out, std::string_view value) {
  for (size_t i = 0; i < value.size();) {
    char c = value[i];
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '"') {
      *out += "\\\"";
    } else if (c == '\n') {
      *out += "\\n";
    } else {
      size_t n = Utf8SequenceLength(value, i);
      if (n == 0) {
        *out += "\xEF\xBF\xBD";
        ++i;
        continue;
      }
      out->append(value.data() + i, n);
      i += n;
      continue;
    }
    ++i;
  }
}

void AppendUint(std::string* out, uint64_t value) {
  char buf[24];
  auto result = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, result.ptr);
}

// Milliseconds as seconds with three decimals ("1712345678.123").
std::string SecondsFromMillis(int64_t ms) {
  std::string out;
  // Through uint64_t, so that INT64_MIN does not overflow.
  uint64_t magnitude = static_cast<uint64_t>(ms);
  if (ms < 0) {
    out += '-';
    magnitude = ~magnitude + 1;
  }
  AppendUint(&out, magnitude / 1000);
  uint64_t frac = magnitude % 1000;
  out += '.';
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
  return out;
}

void AppendHeader(std::string* out, const char* name, const char* type,
                  const char* help) {
  // HELP texts are constants without `\` or newlines: nothing to escape.
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

// `labels` must already have valid, distinct names.
void AppendSample(std::string* out, const char* name, const Labels& labels,
                  std::string_view value) {
  *out += name;
  if (!labels.empty()) {
    *out += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) *out += ',';
      *out += labels[i].first;
      *out += "=\"";
      AppendLabelValue(out, labels[i].second);
      *out += '"';
    }
    *out += '}';
  }
  *out += ' ';
  *out += value;
  *out += '\n';
}

// The identity labels of a connection, made safe to emit: names sanitized,
// names that clash with leakwatch's own labels renamed "identity_<name>", and
// repeated names dropped (the first one wins).
Labels ConnectionLabels(const ConnectionMetrics& c, const Labels& process) {
  Labels labels;
  labels.emplace_back("kind", c.kind);
  auto taken = [&labels](const std::string& name) {
    return std::any_of(labels.begin(), labels.end(),
                       [&](const auto& l) { return l.first == name; });
  };
  for (const auto& [raw_name, value] : c.labels) {
    std::string name = SanitizeLabelName(raw_name);
    for (const char* reserved : kReservedLabels) {
      if (name == reserved) {
        name = "identity_" + name;
        break;
      }
    }
    if (taken(name)) continue;
    labels.emplace_back(std::move(name), value);
  }
  labels.insert(labels.end(), process.begin(), process.end());
  return labels;
}

// Sort key of a label set, independent of the order of its labels.
std::string SeriesKey(const Labels& labels) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  for (const auto& [name, value] : sorted) {
    key += name;
    key += '\0';
    key += value;
    key += '\0';
  }
  return key;
}

}  // namespace

MetricsInput MetricsFromSnapshot(
    const MetricsSnapshot& snapshot,
    const std::function<std::string(uint32_t)>& identity_text) {
  MetricsInput input;
  for (int k = 0; k < kMaxKinds; ++k) {
    const KindDesc* kind = snapshot.kinds[k];
    if (kind == nullptr) continue;
    KindMetrics m;
    m.kind = kind->name;
    m.family = FamilyName(kind->family);
    m.open = snapshot.open[k];
    m.peak_open = snapshot.peak_open[k];
    m.acquired = snapshot.totals.acquired[k];
    m.released = snapshot.totals.released[k] + snapshot.totals.replaced[k];
    m.past_threshold = snapshot.past_threshold[k];
    m.reported_total = snapshot.reported[k];
    input.kinds.push_back(std::move(m));
  }
  input.threads_live = snapshot.threads_live;
  for (const MetricsSnapshot::Connections& c : snapshot.connections) {
    ConnectionMetrics m;
    m.kind = c.kind->name;
    m.labels = IdentityLabels(identity_text(c.identity_string_id));
    m.open = c.open;
    m.idle = c.idle;
    m.in_use = c.in_use;
    m.pinned = c.pinned;
    input.connections.push_back(std::move(m));
  }
  return input;
}

std::string FormatMetrics(const MetricsInput& input) {
  const Labels process = {{"pid", std::to_string(input.pid)},
                          {"program", input.program}};

  // One series per kind, sorted by kind. Entries of the same kind are added
  // together, so that a caller's duplicate never becomes a duplicate series
  // (which would make the collector drop the whole file).
  std::map<std::string, KindMetrics> kinds;
  for (const KindMetrics& k : input.kinds) {
    auto [it, inserted] = kinds.try_emplace(k.kind, k);
    if (inserted) continue;
    KindMetrics& sum = it->second;
    if (sum.family.empty()) sum.family = k.family;
    for (const KindFamily& f : kKindFamilies) sum.*f.field += k.*f.field;
  }

  // One series per kind and identity, in sorted order. Identities that differ
  // only in what is not a label (a "(connection failed)" mark) are added
  // together for the same reason.
  struct ConnectionSeries {
    Labels labels;
    ConnectionMetrics sums;
  };
  std::map<std::string, ConnectionSeries> connections;
  for (const ConnectionMetrics& c : input.connections) {
    Labels labels = ConnectionLabels(c, process);
    std::string key = c.kind + '\0' + SeriesKey(labels);
    auto [it, inserted] = connections.try_emplace(std::move(key));
    ConnectionSeries& series = it->second;
    if (inserted) series.labels = std::move(labels);
    for (const ConnectionFamily& f : kConnectionFamilies) {
      series.sums.*f.field += c.*f.field;
    }
  }

  std::string out;
  out.reserve(512 + 160 * (kinds.size() * std::size(kKindFamilies) +
                           connections.size() * 4));
  std::string number;
  // Families without samples are left out altogether.
  if (!kinds.empty()) {
    for (const KindFamily& f : kKindFamilies) {
      AppendHeader(&out, f.name, f.type, f.help);
      for (const auto& [kind, k] : kinds) {
        Labels labels = {{"kind", kind}, {"family", k.family}};
        labels.insert(labels.end(), process.begin(), process.end());
        number.clear();
        AppendUint(&number, k.*f.field);
        AppendSample(&out, f.name, labels, number);
      }
    }
  }
  if (!connections.empty()) {
    for (const ConnectionFamily& f : kConnectionFamilies) {
      AppendHeader(&out, f.name, "gauge", f.help);
      for (const auto& [key, series] : connections) {
        number.clear();
        AppendUint(&number, series.sums.*f.field);
        AppendSample(&out, f.name, series.labels, number);
      }
    }
  }
  AppendHeader(&out, "leakwatch_threads_live", "gauge",
               "Tracked threads that have not exited.");
  number.clear();
  AppendUint(&number, input.threads_live);
  AppendSample(&out, "leakwatch_threads_live", process, number);
  // A gauge rather than sample timestamps: node_exporter's textfile collector
  // refuses files whose samples carry timestamps. A value that stops moving
  // means the process is gone (or its watchdog stuck) and the file is stale.
  AppendHeader(&out, "leakwatch_last_scan_timestamp_seconds", "gauge",
               "Unix time of the watchdog scan that wrote these values.");
  AppendSample(&out, "leakwatch_last_scan_timestamp_seconds", process,
               SecondsFromMillis(input.timestamp_ms));
  return out;
}

bool WriteMetricsFile(const std::string& path, const std::string& text,
                      std::string* error) {
  if (path.empty()) {
    *error = "no metrics file path";
    return false;
  }
  // The temporary file sits in the same directory (rename is atomic only
  // within a file system) under a name that does not end in ".prom", so the
  // textfile collector never reads it: "<path>.tmp.<pid>.<tid>". The thread
  // id keeps two writers in one process apart (each then renames only its own
  // complete file); a stale file of a dead process that had the same ids is
  // removed first, and O_EXCL | O_NOFOLLOW never writes through a link planted
  // under that name.
  std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." +
                    std::to_string(syscall(SYS_gettid));
  auto fail = [&](const char* what, const std::string& file, int err,
                  bool remove_tmp) {
    *error = std::string(what) + " \"" + file + "\": " + strerror(err);
    if (remove_tmp) unlink(tmp.c_str());
    return false;
  };

  unlink(tmp.c_str());
  int fd;
  do {
    fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return fail("cannot create", tmp, errno, false);
  // The reader (node_exporter) usually runs as another user: make the file
  // readable whatever the host program's umask.
  fchmod(fd, 0644);
  if (!WriteAll(fd, text)) {
    int err = errno != 0 ? errno : EIO;
    close(fd);
    return fail("cannot write", tmp, err, true);
  }
  // No fsync: the file only has to look whole to readers, which rename alone
  // guarantees; it is rewritten every scan and means nothing after a power
  // loss (the process is gone too), and fsync could stall the watchdog for
  // seconds on a busy disk.
  if (close(fd) != 0 && errno != EINTR) {
    return fail("cannot write", tmp, errno, true);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return fail("cannot rename the temporary file over", path, errno, true);
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> IdentityLabels(
    const std::string& identity) {
  std::vector<std::pair<std::string, std::string>> labels;
  std::string_view rest = identity;
  while (!rest.empty()) {
    size_t start = rest.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    size_t end = rest.find_first_of(" \t");
    std::string_view token = rest.substr(0, end);
    rest.remove_prefix(token.size());
    size_t eq = token.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;  // "(connection"
    labels.emplace_back(std::string(token.substr(0, eq)),
                        std::string(token.substr(eq + 1)));
  }
  return labels;
}

}  // namespace leakwatch
