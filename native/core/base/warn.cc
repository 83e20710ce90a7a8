#include "core/base/warn.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace dmabuf {
namespace {

std::mutex g_mu;
WarnHandler g_handler = nullptr;
void* g_data = nullptr;
std::atomic<uint64_t> g_count{0};

}  // namespace

void warn(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_count.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> g(g_mu);
  if (g_handler) {
    g_handler(buf, g_data);
  } else {
    fprintf(stderr, "dmabuf: WARNING: %s\n", buf);
  }
}

WarnHandler set_warn_handler(WarnHandler handler, void* data) {
  std::lock_guard<std::mutex> g(g_mu);
  WarnHandler old = g_handler;
  g_handler = handler;
  g_data = data;
  return old;
}

uint64_t warn_count() { return g_count.load(std::memory_order_relaxed); }

}  // namespace dmabuf
