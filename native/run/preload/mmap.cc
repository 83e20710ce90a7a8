// Interposed mmap(): a mapping of an emulated dma-buf is a mapping of the
// memory behind it. The broker checks the request as the kernel's
// dma_buf_mmap_internal() does and hands over the memfd(s): a heap buffer's
// own, or a udmabuf's ranges of its creator's memfds, mapped side by side.
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "run/preload/client.h"

using namespace dmabuf::run;
using namespace dmabuf::run::preload;

namespace {

// A CPU mapping holds a file reference, as a vma does: a kMapping object (an
// fd kept here, O_CLOEXEC: exec drops mappings) until the range is unmapped.
struct MapRef {
  uintptr_t addr;
  size_t len;
  int fd;
};
pthread_mutex_t g_maps_mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<MapRef>* g_maps;  // never freed: interposed calls may come during exit

void take_ref(uint64_t ino, void* addr, size_t len) {
  Call c;
  c.req.op = Op::kMapRef;
  c.req.ino = ino;
  int64_t r = call(&c);
  free(c.out);
  for (unsigned i = r == 0 ? 1 : 0; i < c.out_nfds; ++i) close(c.out_fds[i]);
  if (r != 0 || c.out_nfds < 1) return;
  pthread_mutex_lock(&g_maps_mu);
  if (!g_maps) g_maps = new std::vector<MapRef>();
  g_maps->push_back({reinterpret_cast<uintptr_t>(addr), len, c.out_fds[0]});
  pthread_mutex_unlock(&g_maps_mu);
}

// Drops the references of mappings now wholly unmapped (a partial munmap
// keeps the rest mapped, and the reference with it), before munmap returns:
// fdinfo's count is back down when the caller looks.
void drop_refs(void* addr, size_t len) {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(addr), hi = lo + len;
  std::vector<uint64_t> gone;
  pthread_mutex_lock(&g_maps_mu);
  if (g_maps) {
    for (size_t i = 0; i < g_maps->size();) {
      MapRef& m = (*g_maps)[i];
      if (m.addr >= lo && m.addr + m.len <= hi) {
        gone.push_back(sock_ino(m.fd));
        close(m.fd);
        m = g_maps->back();
        g_maps->pop_back();
      } else {
        ++i;
      }
    }
  }
  pthread_mutex_unlock(&g_maps_mu);
  for (uint64_t ino : gone) {
    Call c;
    c.req.op = Op::kClosed;
    c.req.ino = ino;
    call(&c);
    free(c.out);
  }
}

void* emu_mmap(uint64_t ino, void* addr, size_t len, int prot, int flags, off_t off, bool* ours) {
  Call c;
  c.req.op = Op::kMmapInfo;
  c.req.ino = ino;
  c.req.a0 = static_cast<uint64_t>(off);
  c.req.a1 = len;
  c.req.cmd = (static_cast<uint64_t>(static_cast<uint32_t>(prot)) << 32) |
              static_cast<uint32_t>(flags & (MAP_SHARED | MAP_PRIVATE));
  int64_t r = call(&c);
  *ours = r != kNotOurs;
  void* result = MAP_FAILED;
  const auto* ranges = reinterpret_cast<const MmapRange*>(c.out);
  auto real_mmap = DMABUF_REAL(mmap);
  if (r < 0) {
    errno = static_cast<int>(-r);
  } else if (c.out_nfds == 1 && c.reply.a0 == 1 && ranges[0].buf_off == 0 && ranges[0].memfd_off == 0) {
    result = real_mmap(addr, len, prot, flags, c.out_fds[0], off);  // a heap buffer: its memfd
  } else if (c.out_nfds == c.reply.a0 && c.out_nfds > 0) {
    // udmabuf: reserve the range, then map each piece of it in place.
    const long ps = sysconf(_SC_PAGESIZE);
    const size_t span = (len + ps - 1) & ~static_cast<size_t>(ps - 1);
    void* base = real_mmap(addr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | (flags & MAP_FIXED), -1, 0);
    result = base;
    const uint64_t lo = static_cast<uint64_t>(off), hi = lo + span;
    for (unsigned i = 0; base != MAP_FAILED && i < c.out_nfds; ++i) {
      const MmapRange& m = ranges[i];
      const uint64_t s = m.buf_off > lo ? m.buf_off : lo;
      const uint64_t e = m.buf_off + m.size < hi ? m.buf_off + m.size : hi;
      if (s >= e) continue;
      void* at = static_cast<char*>(base) + (s - lo);
      if (real_mmap(at, e - s, prot, MAP_SHARED | MAP_FIXED, c.out_fds[i], static_cast<off_t>(m.memfd_off + (s - m.buf_off))) ==
          MAP_FAILED) {
        const int err = errno;
        munmap(base, span);
        errno = err;
        result = MAP_FAILED;
        break;
      }
    }
  } else {
    errno = EIO;
  }
  for (unsigned i = 0; i < c.out_nfds; ++i) close(c.out_fds[i]);
  free(c.out);
  if (result != MAP_FAILED) take_ref(ino, result, len);
  return result;
}

}  // namespace

extern "C" void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (g_config.enabled && fd >= 0 && !(flags & MAP_ANONYMOUS) && !in_call()) {
    if (uint64_t ino = sock_ino(fd)) {
      bool ours = false;
      void* r = emu_mmap(ino, addr, len, prot, flags, off, &ours);
      if (ours) return r;
    }
  }
  return DMABUF_REAL(mmap)(addr, len, prot, flags, fd, off);
}

extern "C" int munmap(void* addr, size_t len) {
  int r = DMABUF_REAL(munmap)(addr, len);
  if (r == 0 && g_config.enabled && !in_call()) drop_refs(addr, len);
  return r;
}

extern "C" void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}
