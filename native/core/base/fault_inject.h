// Fault injection for the emulated platform, in the spirit of the kernel's
// fault-injection framework (failslab, fail_page_alloc): a named point that the
// code consults before an operation that can fail, and that a test arms to fail
// the Nth call or to fail at random with a seeded probability.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace dmabuf {

// The points an emulated platform consults. Names (fault_site_name) are the
// strings the addon and docs use.
enum class FaultSite : unsigned {
  kAllocPages = 0,        // "alloc_pages": the buddy allocator, any order (see FaultSpec::order)
  kCmaAlloc,              // "cma_alloc": the CMA area allocator
  kSetMemoryDecrypted,    // "set_memory_decrypted": before the arch hook runs
  kSetMemoryEncrypted,    // "set_memory_encrypted": before the arch hook runs
  kFatalSignal,           // "fatal_signal_pending": checked once per chunk, fails with -EINTR
  kDmaBufExport,          // "dma_buf_export": creating the buffer's file (memfd)
  kDmaBufFd,              // "dma_buf_fd": installing the user's fd
  kCount,
};

const char* fault_site_name(FaultSite site);
// -EINVAL for an unknown name.
int fault_site_from_name(const char* name, FaultSite* out);
// The errno an armed site fails with unless the spec says otherwise.
int fault_site_default_error(FaultSite site);

// How an armed point decides. Two modes, chosen by `nth`:
// - nth > 0: calls are numbered from 1 since the point was armed; calls
//   nth .. nth+times-1 fail (times == 0: every call from nth on).
// - nth == 0 and probability > 0: each call fails with that probability, drawn
//   from a PRNG seeded with `seed` (so a single-threaded sequence is
//   reproducible); at most `times` failures in all (0: unlimited).
struct FaultSpec {
  uint64_t nth = 0;
  uint64_t times = 1;
  double probability = 0;
  uint64_t seed = 0;
  int error = 0;   // negative errno to fail with; 0 = the site's default
  int order = -1;  // kAllocPages only: count and fail only this order (-1 = all)
};

class FaultPoint {
 public:
  FaultPoint() = default;
  FaultPoint(const FaultPoint&) = delete;
  FaultPoint& operator=(const FaultPoint&) = delete;

  // Arms the point (restarting its call count); a spec with neither nth nor a
  // probability disarms it. -EINVAL for a probability outside [0, 1] or an
  // error that is not a negative errno.
  int configure(const FaultSpec& spec);
  void disarm();

  // 0 to go ahead, or the negative errno to fail with. `order` is the
  // allocation order at kAllocPages (ignored elsewhere). One relaxed load when
  // disarmed.
  int check(int default_error, int order = -1) {
    if (!armed_.load(std::memory_order_relaxed)) return 0;
    return check_slow(default_error, order);
  }

  uint64_t calls() const;     // counted calls since armed
  uint64_t injected() const;  // failures injected since armed

 private:
  int check_slow(int default_error, int order);

  mutable std::mutex mu_;
  std::atomic<bool> armed_{false};
  FaultSpec spec_;
  uint64_t calls_ = 0;
  uint64_t injected_ = 0;
  uint64_t rng_ = 0;
};

}  // namespace dmabuf
