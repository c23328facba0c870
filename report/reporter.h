// The report module's face to the tracker: the EventSink that turns scans,
// snapshots and misuses into models (model.h), renders them in the format
// LEAKWATCH_FORMAT asks for (render.h), writes them to the log, and rewrites
// the LEAKWATCH_METRICS file after each scan. With LEAKWATCH_JSON_LOG, every
// event is also rendered in JSON, from the same model, into that second log.
//
//   leakwatch[PID]: pg.result 0x... held 1.2 s (threshold 1 s) by thread N, ...
//   leakwatch[PID]: pg.result 0x... reported above was released after 2.3 s
//   leakwatch[PID]: SUMMARY: 3 handles still held at exit: 2 pg.conn, ...
//
// What the Reporter decides (and only it): which handles suppressions hide,
// which sites' stacks have been shown, how floods are summarised (at most
// ScanModel::kPerSitePerScan lines per site and scan), how the exit report
// groups handles. What is a leak is decided by the tracker (Held::finding).
//
// Samples (`sample` events, only where JSON is written: LEAKWATCH_FORMAT=json
// or LEAKWATCH_JSON_LOG): the tracker counts one at the first scan, then at
// the first scan a sample interval (kSampleIntervalMs, or the scan period if
// longer) after the last count, and it is written if it is the first or a
// count changed since the last one written: at most one per interval, and a
// change is written within an interval and a scan. At exit one more is
// written, before the exit report, if the process wrote samples or writes
// an exit report. A sample counts, besides each kind, the sites whose live
// warnings (leak, growing site) this process wrote, the first
// OpenSample::kMaxSites of them: a site is counted from the scan after its
// first warning.
//
// Thread safety: OnScan, OnPeriodic and OnExit run on the watchdog thread
// (OnExit on the exiting thread when there is no watchdog), OnMisuse inside
// a hook; one mutex serialises them and the symbolizer. OnExit waits for it
// with a deadline and writes the report without it if it cannot be had.
// OnExitAbandoned takes no lock and does not allocate. WantsSampleAt and
// SampleSites, asked by the scanning thread, take no lock either.
#ifndef LEAKWATCH_REPORT_REPORTER_H_
#define LEAKWATCH_REPORT_REPORTER_H_

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "report/log.h"
#include "report/model.h"
#include "report/render.h"
#include "report/suppressions.h"
#include "report/symbolizer.h"
#include "tracker/tracker.h"

namespace leakwatch {

class Reporter : public EventSink {
 public:
  // `tracker` supplies options and depots; `log` receives the reports, in
  // LEAKWATCH_FORMAT, and a log the Reporter opens for LEAKWATCH_JSON_LOG
  // the same in JSON.
  Reporter(Tracker& tracker, Log& log);
  // The same in `format`, and with a JSON log at `json_log` unless it is
  // empty (tests, benchmarks).
  Reporter(Tracker& tracker, Log& log, Format format,
           const std::string& json_log = "");
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  void OnScan(const ScanEvents& events) override;
  void OnExit(const ExitSnapshot& snapshot) override;
  void OnPeriodic(const ExitSnapshot& snapshot) override;
  void OnDemand(const ExitSnapshot& snapshot) override;
  void OnMisuse(const Misuse& misuse) override;
  void OnNotice(std::string_view what, std::string_view text) override;
  void OnExitAbandoned(int64_t waited_ms) override;
  bool WantsSamples() const override { return json_ != nullptr; }
  bool WantsSampleAt(int64_t now_ns) const override {
    return json_ != nullptr &&
           now_ns >= next_sample_ns_.load(std::memory_order_relaxed);
  }
  int SampleSites(uint64_t* keys) const override;
  void PrepareFork() override;
  void ParentAfterFork() override;
  void ChildAfterFork() override;

  // Samples are written at most this often (or once per scan period, if
  // that is longer).
  static constexpr int64_t kSampleIntervalMs = 1000;

  // The text On* would write, without the lock (tests, benchmarks).
  // FormatScan updates which sites' stacks have been shown; FormatExit
  // counts suppression hits and sets unsuppressed_at_exit().
  std::string FormatScan(const ScanEvents& events);
  std::string FormatExit(const ExitSnapshot& snapshot);
  std::string FormatPeriodic(const ExitSnapshot& snapshot);
  std::string FormatMisuse(const Misuse& misuse);

  // The models behind them.
  ScanModel BuildScanModel(const ScanEvents& events);
  HeldModel BuildHeldModel(const ExitSnapshot& snapshot, bool at_exit);

  // How many held handles (and threads) the exit report showed, suppressed
  // ones not counted: what LEAKWATCH_EXITCODE acts on.
  size_t unsuppressed_at_exit() const { return unsuppressed_at_exit_; }

 private:
  // The suppression rule matching a record's site, or -1 (cached per site).
  int SuppressionFor(const Record& r);
  // Groups `held` by kind and acquisition stack, largest group first; the
  // groups point into `held`.
  void GroupHeld(const ScrubbedVector<Held>& held,
                 std::vector<HeldModel::Group>* out,
                 std::vector<std::pair<std::string, size_t>>* per_kind);
  void WriteMetrics(const MetricsSnapshot& snapshot);
  // What the JSON log gets of an event the format's renderer made `text`
  // of: `text` itself when the format is JSON, else what `render` makes
  // with the JSON renderer (the same model); "" without a JSON log.
  template <typename Render>
  std::string ForJsonLog(const std::string& text, Render&& render);
  // Writes `text` to the log and `json` to the JSON log, each unless "".
  void WriteBoth(const std::string& text, const std::string& json);
  // `sample` goes wherever JSON is written: after (or, `first`, before) the
  // event in `text` when the format is JSON, and in `json` with a JSON log.
  void AddSample(const std::string& sample, bool first, std::string* text,
                 std::string* json);
  // The sites of `model`'s live warnings join the sites samples count.
  void WatchSites(const ScanModel& model);
  // Whether `counts` differ from the last sample written.
  bool SampleChanged(const OpenSample& counts) const;
  // The sample of `counts` (the process's first carries its run fields);
  // MarkSampled once it is written.
  std::string RenderSample(const OpenSample& counts);
  void MarkSampled(const OpenSample& counts);

  Tracker& tracker_;
  Log& log_;
  const Format format_;
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;  // guards all below, log_
                                                    // and json_log_
  Symbolizer symbolizer_;
  RenderContext context_;
  std::unique_ptr<Renderer> renderer_;
  std::unique_ptr<Log> json_log_;  // LEAKWATCH_JSON_LOG, or null
  // The JSON renderer for json_log_ when format_ is text.
  std::unique_ptr<Renderer> json_renderer_;
  // The renderer whose output is JSON (renderer_ or json_renderer_), or null
  // when nothing is written in JSON (then there are no samples).
  Renderer* json_ = nullptr;
  std::unordered_set<uint64_t> sites_shown_;  // SiteKey of sites shown
  // The sites samples count (SiteKey), in the order their first warnings
  // were written. Appended under mu_; SampleSites reads them without it
  // (an entry is written before the count that publishes it).
  uint64_t watched_[OpenSample::kMaxSites] = {};
  std::atomic<int> watched_count_{0};
  // The last sample written in this process (sample_written_).
  bool sample_written_ = false;
  OpenSample last_sample_;
  // The NowNs() from which a scan's sample is looked at (INT64_MIN: the
  // first scan's). Written under mu_, read by WantsSampleAt without it.
  std::atomic<int64_t> next_sample_ns_{INT64_MIN};
  Suppressions suppressions_;
  std::unordered_map<uint64_t, int> suppression_by_site_;
  bool metrics_error_said_ = false;
  size_t unsuppressed_at_exit_ = 0;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_REPORT_REPORTER_H_
