// dmabuf-bench: the native benchmark scenarios as a standalone binary.
#include <cstdio>
#include <cstring>
#include <string>

#include "bench/bench.h"

int main(int argc, char** argv) {
  dmabuf::bench::Options opts;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--json")) json = true;
    else if (!strncmp(argv[i], "--filter=", 9)) opts.filter = argv[i] + 9;
    else if (!strncmp(argv[i], "--ms=", 5)) opts.duration_ms = std::stoi(argv[i] + 5);
    else {
      fprintf(stderr, "usage: dmabuf-bench [--json] [--filter=substr] [--ms=per-row]\n");
      return 2;
    }
  }
  auto rows = dmabuf::bench::run_all(opts);
  fputs((json ? dmabuf::bench::to_json(rows) : dmabuf::bench::to_table(rows)).c_str(), stdout);
  return 0;
}
