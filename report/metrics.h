// Live pool metrics: a Prometheus textfile (node_exporter's textfile
// collector convention) that the watchdog rewrites after each scan when
// LEAKWATCH_METRICS names a path.
//
// The report module fills a MetricsInput from the tracker's scan and calls
// FormatMetrics and WriteMetricsFile. WriteMetricsFile writes a temporary file
// next to `path` and renames it over `path`, so a collector never reads half
// a file.
//
// Thread safety: pure functions; WriteMetricsFile does I/O. Not for hooks.
#ifndef LEAKWATCH_REPORT_METRICS_H_
#define LEAKWATCH_REPORT_METRICS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tracker/tracker.h"

namespace leakwatch {

struct KindMetrics {
  std::string kind;             // "pg.conn", "mysql.result", "thread"
  std::string family;           // "conn", "result", "stmt", "thread"
  uint64_t open = 0;            // held now
  uint64_t peak_open = 0;       // highest `open` seen at a scan since start
  uint64_t acquired = 0;        // total since start
  uint64_t released = 0;        // total since start
  uint64_t past_threshold = 0;  // held now and past the family's threshold
  uint64_t reported_total = 0;  // live warnings given since start
};

// Connections of one kind and identity ("DB.Stats()" per database/user/host).
struct ConnectionMetrics {
  std::string kind;  // "pg.conn", "mysql.conn"
  // Parsed from the identity text, e.g. {"dbname","app"}, {"user","app"},
  // {"host","127.0.0.1"}, {"port","5432"}; the per-connection number
  // (backend pid / connection id) is left out so that series stay few.
  std::vector<std::pair<std::string, std::string>> labels;
  uint64_t open = 0;
  uint64_t idle = 0;    // idle past the conn threshold
  uint64_t in_use = 0;  // inside a blocking call now
  uint64_t pinned = 0;  // pinned by an unbuffered result
};

struct MetricsInput {
  pid_t pid = 0;
  std::string program;
  int64_t timestamp_ms = 0;  // wall clock of the scan
  std::vector<KindMetrics> kinds;
  uint64_t threads_live = 0;  // tracked threads not yet exited
  std::vector<ConnectionMetrics> connections;
};

// The counts of one scan (without pid, program and timestamp, which the
// caller adds). `identity_text` returns the interned identity text of an id.
MetricsInput MetricsFromSnapshot(
    const MetricsSnapshot& snapshot,
    const std::function<std::string(uint32_t)>& identity_text);

// The whole textfile: HELP and TYPE lines, one sample per line, every label
// value escaped as the exposition format requires.
std::string FormatMetrics(const MetricsInput& input);

// Writes `text` to `path` atomically (temporary file + rename). Returns false
// and sets `*error` if it cannot.
bool WriteMetricsFile(const std::string& path, const std::string& text,
                      std::string* error);

// Splits identity text "k1=v1 k2=v2 (connection failed)" into labels; drops
// tokens that are not key=value.
std::vector<std::pair<std::string, std::string>> IdentityLabels(
    const std::string& identity);

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_METRICS_H_
