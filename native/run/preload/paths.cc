#include "run/preload/paths.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "run/preload/client.h"

namespace dmabuf::run::preload {
namespace {

bool starts(const char* s, const char* prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

// "/dev/dma_heap" with at most one trailing slash.
bool is_heap_dir(const char* p) { return !strcmp(p, "/dev/dma_heap") || !strcmp(p, "/dev/dma_heap/"); }

bool is_heap_node(const char* p) {
  const char* name = p + strlen("/dev/dma_heap/");
  return starts(p, "/dev/dma_heap/") && *name && !strchr(name, '/');
}

}  // namespace

bool is_device_node(const char* p) {
  if (!g_config.enabled || !p) return false;
  return (g_config.heaps && is_heap_node(p)) || (g_config.udmabuf && !strcmp(p, "/dev/udmabuf"));
}

Node classify(const char* p, char* fd_path, size_t cap) {
  if (!g_config.enabled || !p || p[0] != '/') return Node::kNone;
  if (g_config.heaps && is_heap_dir(p)) return Node::kHeapDir;
  if (is_device_node(p) || (g_config.sw_sync && !strcmp(p, "/sys/kernel/debug/sync/sw_sync")))
    return Node::kDevice;
  if (g_config.heaps && !strcmp(p, "/sys/kernel/debug/dma_buf/bufinfo")) return Node::kBufinfo;
  if ((g_config.heaps || g_config.sw_sync) &&
      (!strcmp(p, "/sys/kernel/debug") || !strcmp(p, "/sys/kernel/debug/sync") ||
       !strcmp(p, "/sys/kernel/debug/dma_buf")))
    return Node::kDebugDir;
  // /proc/self/fdinfo/N, /proc/thread-self/fdinfo/N, /proc/<pid>/fdinfo/N
  if (starts(p, "/proc/") && fd_path) {
    const char* rest = p + 6;
    const char* slash = strchr(rest, '/');
    if (slash && starts(slash, "/fdinfo/")) {
      const char* num = slash + 8;
      char* end = nullptr;
      long n = strtol(num, &end, 10);
      if (*num && end && !*end && n >= 0) {
        snprintf(fd_path, cap, "/proc/%.*s/fd/%ld", static_cast<int>(slash - rest), rest, n);
        return Node::kFdinfo;
      }
    }
  }
  return Node::kNone;
}

bool shadow_path(const char* p, char* out, size_t cap) {
  const Node n = classify(p, nullptr, 0);
  if (n != Node::kHeapDir && n != Node::kDevice && n != Node::kBufinfo && n != Node::kDebugDir) return false;
  return snprintf(out, cap, "%s%s", g_config.root, p) < static_cast<int>(cap);
}

}  // namespace dmabuf::run::preload
