// libpqxx, leaky: a report service written in the old style, with a raw
// `new` per request. When a report has no rows, the early return skips the
// delete: the connection is lost (nothing points to it any more). Every
// result is also memoized in a process-wide cache that only grows.
//
// Leaks 2 pg.conn (lost: reports 2 and 3, requested more than the 1 s
// threshold apart; report 1 has rows and its connection is deleted) and 3
// pg.result (every report's, cached past the threshold). Prints the same
// lines with or without the agent.
#include <cstdlib>
#include <iostream>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <thread>

extern "C" {
#include "tests/programs/request_loop.h"
}

namespace {

// Never destroyed (the usual singleton that outlives static destructors), so
// its results are still held at exit.
std::map<int, pqxx::result>& ResultCache() {
  static auto* cache = new std::map<int, pqxx::result>;
  return *cache;
}

std::string Report(int id) {
  auto* conn = new pqxx::connection("");  // the PG* environment variables
  pqxx::nontransaction tx(*conn);
  pqxx::result rows = tx.exec_params(
      "SELECT g FROM generate_series(1, 3) g WHERE g <= 2 - $1", id);
  ResultCache()[id] = rows;
  if (rows.empty()) return "report " + std::to_string(id) + ": empty";
  tx.commit();
  delete conn;
  return "report " + std::to_string(id) + ": " + std::to_string(rows.size()) +
         " rows";
}

}  // namespace

int main() {
  for (int id : {1, 2, 3}) {
    std::cout << Report(id) << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  }
  const char* log = std::getenv("LEAKWATCH_LOG");
  if (log != nullptr && log[0] != '\0') {
    rl_wait_for_lines(log, "pg.conn 0x", 2);
    rl_wait_for_lines(log, "pg.result 0x", 3);
  }
  std::cout << ResultCache().size() << " results cached" << std::endl;
  return 0;
}
