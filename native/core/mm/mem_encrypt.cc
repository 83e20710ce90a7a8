#include "core/mm/mem_encrypt.h"

#include <cerrno>
#include <mutex>

#include "core/mm/platform.h"

namespace dmabuf {
namespace {

int convert(Platform* p, uint64_t addr, int numpages, bool decrypt) {
  MemCrypt& c = p->crypt;
  (decrypt ? c.decrypt_calls : c.encrypt_calls).fetch_add(1, std::memory_order_relaxed);
  auto failed = [&](int err) {
    (decrypt ? c.decrypt_failures : c.encrypt_failures).fetch_add(1, std::memory_order_relaxed);
    return err;
  };
  const uint64_t pfn = p->virt_to_pfn(addr);
  if (numpages <= 0 || pfn == UINT64_MAX) return failed(-EINVAL);
  const PageState from = decrypt ? PageState::kPrivate : PageState::kShared;
  const PageState to = decrypt ? PageState::kShared : PageState::kPrivate;
  // Refuse up front a conversion from the wrong state, before the hook sees it.
  if (!p->pages->can_transition(pfn, numpages, from)) {
    p->pages->report_violation(decrypt ? "set_memory_decrypted on memory that is not allocated and private"
                                       : "set_memory_encrypted on memory that is not shared",
                               pfn, numpages);
    return failed(-EINVAL);
  }
  const FaultSite site = decrypt ? FaultSite::kSetMemoryDecrypted : FaultSite::kSetMemoryEncrypted;
  if (int err = p->fault(site).check(fault_site_default_error(site))) return failed(err);
  {
    std::shared_lock<std::shared_mutex> g(c.hook_mu);
    MemCryptHook hook = decrypt ? c.decrypt : c.encrypt;
    if (hook) {
      int err = hook(c.data, addr, numpages);
      if (err > 0 || err < -4095) err = -EIO;  // a hook must return 0 or -errno
      if (err) return failed(err);
    }
  }
  if (int err = p->pages->transition(pfn, numpages, from, to)) return failed(err);
  return 0;
}

}  // namespace

void set_mem_crypt_hooks(Platform* p, MemCryptHook decrypt, MemCryptHook encrypt, void* data) {
  std::unique_lock<std::shared_mutex> g(p->crypt.hook_mu);
  p->crypt.decrypt = decrypt;
  p->crypt.encrypt = encrypt;
  p->crypt.data = data;
}

int set_memory_decrypted(Platform* p, uint64_t addr, int numpages) {
  return convert(p, addr, numpages, true);
}

int set_memory_encrypted(Platform* p, uint64_t addr, int numpages) {
  return convert(p, addr, numpages, false);
}

MemCryptStats mem_crypt_stats(Platform* p) {
  MemCryptStats s;
  s.decrypt_calls = p->crypt.decrypt_calls.load(std::memory_order_relaxed);
  s.decrypt_failures = p->crypt.decrypt_failures.load(std::memory_order_relaxed);
  s.encrypt_calls = p->crypt.encrypt_calls.load(std::memory_order_relaxed);
  s.encrypt_failures = p->crypt.encrypt_failures.load(std::memory_order_relaxed);
  return s;
}

}  // namespace dmabuf
