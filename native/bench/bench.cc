#include "bench/bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace dmabuf::bench {
namespace {

struct Group {
  const char* name;
  Scenario fn;
};
std::vector<Group>& registry() {
  static std::vector<Group> groups;
  return groups;
}

double now_ns() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

std::string fmt(double v) {
  char b[64];
  if (v >= 100) snprintf(b, sizeof b, "%.0f", v);
  else if (v >= 10) snprintf(b, sizeof b, "%.1f", v);
  else snprintf(b, sizeof b, "%.2f", v);
  return b;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += c; }
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

}  // namespace

Register::Register(const char* group, Scenario fn) { registry().push_back({group, std::move(fn)}); }

std::vector<Row> run_all(const Options& opts) {
  std::vector<Row> rows;
  auto groups = registry();
  std::sort(groups.begin(), groups.end(),
            [](const Group& a, const Group& b) { return std::string(a.name) < b.name; });
  // A filter that names a group runs that group alone (and keeps all its rows);
  // any other filter runs every group and keeps the rows whose name contains it.
  const bool by_group = std::any_of(groups.begin(), groups.end(),
                                    [&](const Group& g) { return opts.filter == g.name; });
  for (auto& g : groups) {
    if (by_group && opts.filter != g.name) continue;
    std::vector<Row> out;
    g.fn(opts, out);
    for (auto& r : out)
      if (by_group || opts.filter.empty() || r.name.find(opts.filter) != std::string::npos)
        rows.push_back(r);
  }
  return rows;
}

double ns_per_op(const Options& opts, const std::function<void(uint64_t)>& op) {
  // Calibrate an iteration count that takes about duration_ms.
  uint64_t iters = 1000;
  for (;;) {
    double t0 = now_ns();
    op(iters);
    double dt = now_ns() - t0;
    if (dt > 5e6 || iters > (1ULL << 32)) {
      iters = static_cast<uint64_t>(iters * (opts.duration_ms * 1e6 / std::max(dt, 1.0)));
      break;
    }
    iters *= 4;
  }
  iters = std::max<uint64_t>(iters, 1);
  double best = 1e300;
  for (int r = 0; r < opts.repeats; ++r) {
    double t0 = now_ns();
    op(iters);
    best = std::min(best, (now_ns() - t0) / static_cast<double>(iters));
  }
  return best;
}

double throughput(const Options& opts, int threads,
                  const std::function<uint64_t(int, const volatile bool*)>& op) {
  double best = 0;
  for (int r = 0; r < opts.repeats; ++r) {
    volatile bool stop = false;
    std::atomic<int> ready{0};
    std::vector<uint64_t> counts(threads, 0);
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < threads) std::this_thread::yield();
        counts[i] = op(i, &stop);
      });
    }
    while (ready.load() < threads) std::this_thread::yield();
    double t0 = now_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(opts.duration_ms));
    stop = true;
    for (auto& t : ts) t.join();
    double dt = now_ns() - t0;
    uint64_t total = 0;
    for (auto c : counts) total += c;
    best = std::max(best, total / (dt / 1e9));
  }
  return best;
}

Row ratio_row(std::string name, double value, std::string unit, std::string floor_name,
              double floor, std::string target, bool lower_is_better, std::string note) {
  Row r;
  r.name = std::move(name);
  r.value = value;
  r.unit = std::move(unit);
  r.floor_name = std::move(floor_name);
  r.floor = floor;
  r.ratio = floor > 0 ? value / floor : 0;
  r.target = target;
  if (!target.empty()) {
    double t = std::stod(target.substr(target.find_first_of("0123456789")));
    r.met = lower_is_better ? r.ratio <= t : r.ratio >= t;
  }
  r.note = std::move(note);
  return r;
}

std::string to_table(const std::vector<Row>& rows) {
  std::string out;
  char line[512];
  snprintf(line, sizeof line, "%-46s %12s %-7s %-40s %10s %7s %-8s\n", "scenario", "value", "unit",
           "floor (same run)", "floor", "ratio", "target");
  out += line;
  for (auto& r : rows) {
    std::string tgt = r.target.empty() ? "" : r.target + (r.met ? " ok" : " MISS");
    snprintf(line, sizeof line, "%-46s %12s %-7s %-40s %10s %7s %-8s\n", r.name.c_str(),
             fmt(r.value).c_str(), r.unit.c_str(), r.floor_name.c_str(), fmt(r.floor).c_str(),
             (fmt(r.ratio) + "x").c_str(), tgt.c_str());
    out += line;
    if (!r.note.empty()) out += "    " + r.note + "\n";
  }
  return out;
}

std::string to_json(const std::vector<Row>& rows) {
  std::string out = "[\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    auto& r = rows[i];
    char num[160];
    out += "  {\"name\": \"" + json_escape(r.name) + "\", ";
    snprintf(num, sizeof num, "\"value\": %.6g, \"floor\": %.6g, \"ratio\": %.6g, ", r.value,
             r.floor, r.ratio);
    out += num;
    out += "\"unit\": \"" + json_escape(r.unit) + "\", \"floorName\": \"" +
           json_escape(r.floor_name) + "\", \"target\": \"" + json_escape(r.target) +
           "\", \"met\": " + (r.met ? "true" : "false") + ", \"note\": \"" +
           json_escape(r.note) + "\"}";
    out += i + 1 < rows.size() ? ",\n" : "\n";
  }
  return out + "]\n";
}

}  // namespace dmabuf::bench
