// libpqxx, clean: two connections opened together at start-up serve four
// bursts of transactions with pauses longer than the agent's threshold
// between them; results and connections are released by their destructors.
#include <chrono>
#include <iostream>
#include <memory>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

int main() {
  std::vector<std::unique_ptr<pqxx::connection>> pool;
  for (int i = 0; i < 2; ++i) {
    pool.push_back(std::make_unique<pqxx::connection>(""));  // PG* variables
  }
  long total = 0;
  for (int burst = 0; burst < 4; ++burst) {
    for (size_t i = 0; i < pool.size(); ++i) {
      pqxx::work tx(*pool[i]);
      pqxx::result r = tx.exec_params("SELECT $1::int * 2", burst + int(i));
      total += r[0][0].as<long>();
      tx.commit();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  std::cout << "total " << total << std::endl;
  return 0;
}
