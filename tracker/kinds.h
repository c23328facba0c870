// Kinds and families of tracked handles.
//
// The tracker knows nothing of databases: a kind is a name ("pg.conn") that the
// interpose layer declares as a constexpr KindDesc, plus the family that
// carries its threshold and leak rule. Records point at their KindDesc, so no
// registration step is needed before the first hook runs.
//
// Thread safety: KindDesc objects are immutable constants.
#ifndef LEAKWATCH_TRACKER_KINDS_H_
#define LEAKWATCH_TRACKER_KINDS_H_

#include <cstdint>

namespace leakwatch {

// A family carries a threshold and a leak rule.
//   kConn:   idle (no activity) longer than the threshold.
//   kResult, kStmt: held longer than the threshold since acquisition.
//   kThread: see the thread rules (not a hold-time rule).
enum class Family : uint8_t { kConn = 0, kResult = 1, kStmt = 2, kThread = 3 };
inline constexpr int kNumFamilies = 4;

const char* FamilyName(Family family);

// True if the family's leak rule measures idle time rather than hold time.
constexpr bool FamilyUsesIdleTime(Family family) {
  return family == Family::kConn;
}

inline constexpr int kMaxKinds = 16;

struct KindDesc {
  const char* name;  // "pg.conn"; also what suppressions and stats print
  Family family;
  uint8_t index;  // unique per kind, < kMaxKinds: slot for per-kind counters
  // What Identity::detail means for this kind ("backend_pid"), or nullptr.
  const char* detail_label = nullptr;
  // True for a handle that normally lives as long as the handle it came from
  // (Record::parent), e.g. a connection's cancel handle, which drivers such
  // as psycopg2 keep for the connection's whole life: it is not reported live
  // while its parent is still tracked, only once it outlives the parent by the
  // threshold. At exit it is reported like any other handle.
  bool lives_with_parent = false;
  // True for a lives-with-parent kind that is also judged while its parent
  // lives, by the growth of its site (a statement prepared per request on a
  // pooled connection and never used again): per acquisition site, the
  // handles idle past the family's threshold, not in a call and never used
  // again after a gap (kReused) are counted; the site is growing when there
  // are at least 2 of them, acquired over more than the threshold.
  bool judged_by_growth = false;
  // True for a handle that exists only inside its parent's session (a
  // server-side prepared statement): it ends when the parent is released or
  // replaced, so one found without its parent is forgotten, never reported.
  // Its key is synthetic (no memory behind it): never scanned for pointers.
  bool ends_with_parent = false;
  // True for a lives-with-parent kind that a driver may keep after its parent
  // is released, until its own object dies (psycopg2 frees a closed
  // connection's cancel handle only when the Python object is deallocated):
  // outliving the parent, it is a leak only once nothing refers to it any
  // more (lost), while the reachability scan can tell; without a verdict
  // (scans off or impossible) it is reported after the threshold as before.
  bool kept_past_parent = false;
};

// What a handle is: an interned description ("dbname=app user=app
// host=127.0.0.1 port=5432") and one number that changes per handle (a server
// backend pid), kept apart so that the string depot holds one copy per
// distinct description rather than one per connection.
struct Identity {
  uint32_t string_id = 0;  // in the tracker's string depot; 0 = none
  uint32_t detail = 0;     // labelled by KindDesc::detail_label; 0 = none
  // The connect attempt failed: the handle still has to be finished or
  // closed (the reports say "(connection failed)").
  bool connect_failed = false;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_KINDS_H_
