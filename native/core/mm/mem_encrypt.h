// set_memory_decrypted / set_memory_encrypted for an emulated confidential-
// computing guest. The arch's page conversion is a pluggable hook (a plain
// function pointer and a context pointer, so the addon can route it to
// JavaScript); the emulation applies the page-state change itself once the
// hook and the fault point have agreed, so the state table stays truthful
// whatever the hook does.
#pragma once

#include <atomic>
#include <cstdint>
#include <shared_mutex>

namespace dmabuf {

struct Platform;

// The arch conversion: 0 on success or a negative errno. `addr` is the
// emulated direct-map address (Platform::page_address) of the first page.
// Called outside every emulation lock, possibly from several threads at once.
using MemCryptHook = int (*)(void* data, uint64_t addr, int numpages);

struct MemCryptStats {
  uint64_t decrypt_calls = 0;
  uint64_t decrypt_failures = 0;
  uint64_t encrypt_calls = 0;
  uint64_t encrypt_failures = 0;
};

struct MemCrypt {
  std::shared_mutex hook_mu;  // held shared across a hook call, exclusive to swap
  MemCryptHook decrypt = nullptr;
  MemCryptHook encrypt = nullptr;
  void* data = nullptr;
  std::atomic<uint64_t> decrypt_calls{0}, decrypt_failures{0};
  std::atomic<uint64_t> encrypt_calls{0}, encrypt_failures{0};
};

// Installs the arch hooks (nullptr = conversion always succeeds). Waits for
// calls in flight on the old hooks, so `data` of the old hooks may be freed
// once this returns. Must not be called from inside a hook.
void set_mem_crypt_hooks(Platform* p, MemCryptHook decrypt, MemCryptHook encrypt, void* data);

// Converts `numpages` pages starting at direct-map address `addr` from private
// to shared. Order: the "set_memory_decrypted" fault point, then the hook, then
// the state change. On failure nothing changes (the emulation treats a failed
// conversion as atomic) and the error is returned. -EINVAL if the range is not
// private allocated memory of this platform.
int set_memory_decrypted(Platform* p, uint64_t addr, int numpages);
// Shared -> private, same order and rules.
int set_memory_encrypted(Platform* p, uint64_t addr, int numpages);

MemCryptStats mem_crypt_stats(Platform* p);

}  // namespace dmabuf
