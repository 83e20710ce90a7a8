// Native benchmark scenarios. Every row carries a floor measured in the same run
// and the ratio to it, because the machines are shared and absolute times lie.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dmabuf::bench {

struct Options {
  std::string filter;    // a group's name (fence, containers, heaps, issuer, kernel): that
                         // group alone; otherwise the rows whose name contains it
  int duration_ms = 150; // per measurement; each is repeated and the best kept
  int repeats = 5;
};

struct Row {
  std::string name;        // what is measured
  double value = 0;        // ns/op, or ops/s for throughput rows
  std::string unit;        // "ns/op" or "Mops/s"
  std::string floor_name;  // what it is compared against
  double floor = 0;        // same unit, same run
  double ratio = 0;        // value / floor
  std::string target;      // e.g. "<= 1.5" (empty: informational)
  bool met = true;         // whether ratio meets target
  std::string note;
};

using Scenario = std::function<void(const Options&, std::vector<Row>&)>;

// Registers a scenario group; used from static initialisers in each bench file.
struct Register {
  Register(const char* group, Scenario fn);
};

std::vector<Row> run_all(const Options& opts);
std::string to_table(const std::vector<Row>& rows);
std::string to_json(const std::vector<Row>& rows);

// --- helpers for scenario files ---

// Runs `op(iterations)` repeatedly for about duration_ms and returns ns per op
// (the best of opts.repeats runs).
double ns_per_op(const Options& opts, const std::function<void(uint64_t iters)>& op);
// Runs `op(thread_index, stop_flag) -> ops done` on n threads at once for about
// duration_ms; returns total ops per second (best of opts.repeats).
double throughput(const Options& opts, int threads,
                  const std::function<uint64_t(int, const volatile bool*)>& op);

Row ratio_row(std::string name, double value, std::string unit, std::string floor_name,
              double floor, std::string target, bool lower_is_better, std::string note = "");

// Keeps the compiler from deleting benchmark work.
template <typename T>
inline void do_not_optimize(const T& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

}  // namespace dmabuf::bench
