// Parameter sweeps for `dmabuf bench --sweep NAME`: how a cost scales with one
// parameter (threads, callbacks per fence, live detached fences at unload, chain
// length, array width), one series per variant plus a floor series measured at
// every point of the same run.
#pragma once

#include <string>
#include <vector>

namespace dmabuf::bench {

/** The sweeps sweep_json() knows, in the order `--help` lists them. */
const std::vector<std::string>& sweep_names();

/**
 * sweep_json() - run the sweep @name and describe it as JSON
 * @duration_ms: per measurement (each point of each series is one measurement,
 *               repeated and the best kept)
 * @error: why the sweep could not run (unknown name, example modules missing)
 *
 * Returns the JSON text (see lib/bench_sweep.ts for its shape), or "" with
 * @error set.
 */
std::string sweep_json(const std::string& name, int duration_ms, std::string* error);

}  // namespace dmabuf::bench
