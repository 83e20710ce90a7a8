#include "core/base/fault_inject.h"

#include <cerrno>
#include <cstring>

namespace dmabuf {
namespace {

struct SiteInfo {
  const char* name;
  int error;
};
constexpr SiteInfo kSites[] = {
    {"alloc_pages", -ENOMEM},
    {"cma_alloc", -ENOMEM},
    // The errno set_memory_decrypted returns is arch-specific and undocumented;
    // x86's page-table conversion fails with -ENOMEM or -EIO. -EIO says "the
    // hypervisor refused", which is what tests usually mean.
    {"set_memory_decrypted", -EIO},
    {"set_memory_encrypted", -EIO},
    {"fatal_signal_pending", -EINTR},
    {"dma_buf_export", -ENOMEM},
    {"dma_buf_fd", -EMFILE},
};
static_assert(sizeof(kSites) / sizeof(kSites[0]) == static_cast<size_t>(FaultSite::kCount));

// splitmix64: tiny, seedable, and good enough to spread failures.
uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

const char* fault_site_name(FaultSite site) {
  auto i = static_cast<size_t>(site);
  return i < static_cast<size_t>(FaultSite::kCount) ? kSites[i].name : "?";
}

int fault_site_from_name(const char* name, FaultSite* out) {
  if (!name) return -EINVAL;
  for (size_t i = 0; i < static_cast<size_t>(FaultSite::kCount); ++i) {
    if (!strcmp(kSites[i].name, name)) {
      *out = static_cast<FaultSite>(i);
      return 0;
    }
  }
  return -EINVAL;
}

int fault_site_default_error(FaultSite site) {
  auto i = static_cast<size_t>(site);
  return i < static_cast<size_t>(FaultSite::kCount) ? kSites[i].error : -EINVAL;
}

int FaultPoint::configure(const FaultSpec& spec) {
  if (!(spec.probability >= 0 && spec.probability <= 1)) return -EINVAL;
  if (spec.error > 0 || spec.error < -4095) return -EINVAL;
  std::lock_guard<std::mutex> g(mu_);
  spec_ = spec;
  calls_ = 0;
  injected_ = 0;
  rng_ = spec.seed;
  armed_.store(spec.nth != 0 || spec.probability > 0, std::memory_order_relaxed);
  return 0;
}

void FaultPoint::disarm() { configure(FaultSpec{}); }

int FaultPoint::check_slow(int default_error, int order) {
  std::lock_guard<std::mutex> g(mu_);
  if (spec_.order >= 0 && order >= 0 && order != spec_.order) return 0;
  const uint64_t n = ++calls_;
  bool fail;
  if (spec_.nth) {
    fail = n >= spec_.nth && (spec_.times == 0 || n - spec_.nth < spec_.times);
  } else {
    // 53 random bits -> [0, 1)
    const double draw = static_cast<double>(next_random(&rng_) >> 11) * 0x1.0p-53;
    fail = draw < spec_.probability && (spec_.times == 0 || injected_ < spec_.times);
  }
  if (!fail) return 0;
  ++injected_;
  return spec_.error ? spec_.error : default_error;
}

uint64_t FaultPoint::calls() const {
  std::lock_guard<std::mutex> g(mu_);
  return calls_;
}

uint64_t FaultPoint::injected() const {
  std::lock_guard<std::mutex> g(mu_);
  return injected_;
}

}  // namespace dmabuf
