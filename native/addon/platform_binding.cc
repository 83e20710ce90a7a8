// Emulated platforms for JavaScript: create, fault points, handles across
// worker_threads, page/encryption counters, a revocable (VFIO-like) exporter,
// and the set_memory_{de,en}crypted hooks routed to JavaScript.
//
// JS hooks. The core calls a hook (MemCryptHook) from whatever thread converts
// pages. JavaScript can only run on the thread whose environment set the hooks,
// and only while that environment lives, so the trampoline calls JS there and
// fails the conversion with -EPERM anywhere else (another thread; JS cannot
// run, e.g. during teardown). A failed conversion is the safe outcome: a failed
// decrypt fails the allocation, a failed re-encrypt leaks the pages. The
// environment's cleanup removes its hooks (later conversions then behave as
// with no hook). Installed hooks hold a platform reference.
#include <pthread.h>

#include <cerrno>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/dma_buf_obj.h"
#include "addon/export_registry.h"
#include "addon/env_state.h"
#include "addon/handles.h"
#include "core/mm/mem_encrypt.h"
#include "core/mm/page_alloc.h"
#include "core/mm/platform.h"
#include "core/buffer/vfio_dmabuf.h"

namespace dmabuf::addon {
namespace {

Platform* PlatHandle(const Napi::CallbackInfo& info, size_t i) {
  Platform* p = PlatHolder::From(info[i]);
  if (!p) throw BadHandle(info.Env(), "Platform handle");
  return p;
}

// platformCreate(kernelVersion, arch, memEncrypt, cmaBytes: bigint, ramBytes: bigint) -> External
Napi::Value PlatformCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PlatformConfig c;
  const std::string kv = StrArg(info, 0);
  const std::string arch = StrArg(info, 1);
  c.mem_encrypt = info[2].ToBoolean();
  c.cma_bytes = U64Arg(info, 3);
  c.ram_bytes = U64Arg(info, 4);
  int e = parse_kernel_version(kv.c_str(), &c.kernel) ? -EINVAL : 0;
  if (!e && arch_from_name(arch.c_str(), &c.arch)) e = -EINVAL;
  Platform* p = nullptr;
  if (!e) e = platform_create(c, &p);
  if (e)
    throw ErrnoError(env, e, "platform_create",
                     "bad platform configuration (kernel '" + kv + "', arch '" + arch + "', cma " +
                         std::to_string(c.cma_bytes) + ", ram " + std::to_string(c.ram_bytes) + ")");
  return PlatHolder::Wrap(env, p);
}

Napi::Value PlatformDispose(const Napi::CallbackInfo& info) {
  PlatHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// platformSetFault(p, site, nth: bigint, times: bigint, error): EINVAL for an unknown site
Napi::Value PlatformSetFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Platform* p = PlatArgAt(info, 0);
  const std::string site = StrArg(info, 1);
  FaultSpec spec;
  spec.nth = U64Arg(info, 2);
  spec.times = U64Arg(info, 3);
  if (!info[4].IsNumber()) throw BadArg(env, "expected an errno number");
  spec.error = info[4].As<Napi::Number>().Int32Value();
  if (int e = platform_set_fault(p, site.c_str(), spec))
    throw ErrnoError(env, e, "fault_inject", "arming fault '" + site + "'");
  return env.Undefined();
}

// --- handles across threads ---

// Platform references parked for another thread (exportHandle / importHandle).
ExportRegistry<Platform, platform_put> g_exports;

// platformExport(p) -> bigint: a new reference another thread adopts once.
Napi::Value PlatformExport(const Napi::CallbackInfo& info) {
  Platform* p = platform_get(PlatHandle(info, 0));
  return Napi::BigInt::New(info.Env(), g_exports.Export(p, EnvState::Get(info.Env())));
}

// platformImport(bigint) -> External; EINVAL if never exported (or already adopted)
Napi::Value PlatformImport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBigInt()) throw BadArg(env, "expected a bigint handle");
  bool ok = true;
  const uint64_t id = BigIntU64(info[0], &ok);
  Platform* p = nullptr;
  if (!ok || g_exports.Import(id, &p) != decltype(g_exports)::Result::kOk)
    throw ErrnoError(env, -EINVAL, nullptr, "unknown Platform handle (never exported, or already imported)");
  return PlatHolder::Wrap(env, p);
}

// --- counters ---

// platformStats(p) -> { totalPages, freePages, ..., encryptFailures, pageSize }
Napi::Value PlatformStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Platform* p = PlatHandle(info, 0);
  const PageAllocStats s = p->pages->stats();
  const MemCryptStats c = mem_crypt_stats(p);
  Napi::Object o = Napi::Object::New(env);
  o.Set("pageSize", Num(env, static_cast<double>(p->page_size())));
  o.Set("totalPages", Num(env, static_cast<double>(s.total_pages)));
  o.Set("freePages", Num(env, static_cast<double>(s.free_pages)));
  o.Set("sharedPages", Num(env, static_cast<double>(s.shared_pages)));
  o.Set("leakedPages", Num(env, static_cast<double>(s.leaked_pages)));
  o.Set("leakedBlocks", Num(env, static_cast<double>(s.leaked_blocks)));
  o.Set("violations", Num(env, static_cast<double>(s.violations)));
  o.Set("decryptCalls", Num(env, static_cast<double>(c.decrypt_calls)));
  o.Set("decryptFailures", Num(env, static_cast<double>(c.decrypt_failures)));
  o.Set("encryptCalls", Num(env, static_cast<double>(c.encrypt_calls)));
  o.Set("encryptFailures", Num(env, static_cast<double>(c.encrypt_failures)));
  return o;
}

// platformLeaked(p) -> [[addr: bigint, numPages], ...], oldest first. addr is
// the direct-map address the hooks saw (page_address of the first pfn).
Napi::Value PlatformLeaked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Platform* p = PlatHandle(info, 0);
  const auto leaked = p->pages->leaked();
  Napi::Array out = Napi::Array::New(env, leaked.size());
  for (uint32_t i = 0; i < leaked.size(); ++i) {
    Napi::Array e = Napi::Array::New(env, 2);
    e.Set(0u, Napi::BigInt::New(env, p->page_address(leaked[i].first)));
    e.Set(1u, Num(env, static_cast<double>(leaked[i].second)));
    out.Set(i, e);
  }
  return out;
}

// vfioExport(p?, size: bigint, openFlags) -> External
Napi::Value VfioExport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Platform* p = PlatArgAt(info, 0);
  const uint64_t size = U64Arg(info, 1);
  const uint32_t flags = U32Arg(info, 2);
  DmaBuf* buf = nullptr;
  int e = vfio_dmabuf_export(p, size, flags, &buf);
  if (e)
    throw ErrnoError(env, e, "VFIO_DEVICE_FEATURE_DMA_BUF", "exporting a " + std::to_string(size) + "-byte BAR range");
  return WrapEmuBuf(env, buf, true);
}

// --- set_memory_{de,en}crypted hooks in JavaScript ---

// One per environment that uses hooks: the dispatcher lib/platform.ts gave,
// (id, decrypt, addr, numPages) => number. Owned by the environment's cleanup
// hook; the External handed to JS never frees it.
struct CryptEnv {
  napi_env env;
  pthread_t thread;
  napi_ref dispatch = nullptr;
  bool alive = true;  // JS thread only
};
void crypt_env_keep(CryptEnv*) {}
using CryptEnvHolder = Holder<CryptEnv, crypt_env_keep, 0x43525950>;  // "CRYP"

// The data of installed hooks. Immutable while installed; freed after
// set_mem_crypt_hooks replaced it (which waits for calls in flight).
struct CryptHooks {
  CryptEnv* env;
  pthread_t thread;
  uint32_t id;
  Platform* p;  // a reference
};

// Installed hooks by platform. Held across set_mem_crypt_hooks so that
// installing and removing stay in step with the core's slot.
std::mutex g_crypt_mu;
std::unordered_map<Platform*, CryptHooks*> g_crypt;

int CallJsHook(void* data, uint64_t addr, int numpages, bool decrypt) {
  auto* h = static_cast<CryptHooks*>(data);
  if (!pthread_equal(pthread_self(), h->thread)) return -EPERM;
  CryptEnv* ce = h->env;
  if (!ce->alive) return -EPERM;
  napi_env env = ce->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return -EPERM;
  int ret = -EPERM;
  napi_value fn = nullptr, recv, args[4], result;
  // A pending exception (termination) makes napi_call_function fail: -EPERM.
  if (napi_get_reference_value(env, ce->dispatch, &fn) == napi_ok && fn &&
      napi_get_undefined(env, &recv) == napi_ok && napi_create_uint32(env, h->id, &args[0]) == napi_ok &&
      napi_get_boolean(env, decrypt, &args[1]) == napi_ok &&
      napi_create_bigint_uint64(env, addr, &args[2]) == napi_ok &&
      napi_create_int32(env, numpages, &args[3]) == napi_ok &&
      napi_call_function(env, recv, fn, 4, args, &result) == napi_ok) {
    int32_t v = 0;
    ret = napi_get_value_int32(env, result, &v) == napi_ok ? v : -EIO;
  }
  napi_close_handle_scope(env, scope);
  return ret;
}
int DecryptHook(void* data, uint64_t addr, int numpages) { return CallJsHook(data, addr, numpages, true); }
int EncryptHook(void* data, uint64_t addr, int numpages) { return CallJsHook(data, addr, numpages, false); }

// Replaces p's hooks (g_crypt_mu held); returns the old data for the caller to free.
CryptHooks* SwapHooksLocked(Platform* p, CryptHooks* nh, bool decrypt, bool encrypt) {
  set_mem_crypt_hooks(p, nh && decrypt ? DecryptHook : nullptr, nh && encrypt ? EncryptHook : nullptr, nh);
  CryptHooks* old = nullptr;
  auto it = g_crypt.find(p);
  if (it != g_crypt.end()) {
    old = it->second;
    if (nh) it->second = nh;
    else g_crypt.erase(it);
  } else if (nh) {
    g_crypt.emplace(p, nh);
  }
  return old;
}
void FreeHooks(CryptHooks* h) {
  if (!h) return;
  platform_put(h->p);
  delete h;
}

void CryptEnvCleanup(void* data) {
  auto* ce = static_cast<CryptEnv*>(data);
  ce->alive = false;
  std::vector<CryptHooks*> mine;
  {
    std::lock_guard<std::mutex> g(g_crypt_mu);
    std::vector<Platform*> ps;
    for (auto& [p, h] : g_crypt)
      if (h->env == ce) ps.push_back(p);
    for (Platform* p : ps) mine.push_back(SwapHooksLocked(p, nullptr, false, false));
  }
  for (CryptHooks* h : mine) FreeHooks(h);
  napi_delete_reference(ce->env, ce->dispatch);
  delete ce;
}

// memCryptInit(dispatch) -> External (this environment's hook state)
Napi::Value MemCryptInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw BadArg(env, "expected the dispatcher function");
  auto* ce = new CryptEnv{env, pthread_self()};
  napi_create_reference(env, info[0], 1, &ce->dispatch);
  napi_add_env_cleanup_hook(env, CryptEnvCleanup, ce);
  return CryptEnvHolder::Wrap(env, ce);
}

CryptEnv* CryptEnvArg(const Napi::CallbackInfo& info, size_t i) {
  CryptEnv* ce = CryptEnvHolder::From(info[i]);
  if (!ce) throw BadHandle(info.Env(), "mem-crypt environment handle");
  return ce;
}

// platformSetMemCryptHooks(p, cryptEnv, id, decrypt: boolean, encrypt: boolean):
// installs (or, with neither, removes) p's hooks. Must not run inside a hook
// (lib/platform.ts refuses that: it would wait for itself).
Napi::Value PlatformSetMemCryptHooks(const Napi::CallbackInfo& info) {
  Platform* p = PlatHandle(info, 0);
  CryptEnv* ce = CryptEnvArg(info, 1);
  const uint32_t id = U32Arg(info, 2);
  const bool decrypt = info[3].ToBoolean(), encrypt = info[4].ToBoolean();
  CryptHooks* nh = nullptr;
  if (decrypt || encrypt) nh = new CryptHooks{ce, pthread_self(), id, platform_get(p)};
  CryptHooks* old;
  {
    std::lock_guard<std::mutex> g(g_crypt_mu);
    old = SwapHooksLocked(p, nh, decrypt, encrypt);
  }
  FreeHooks(old);
  return info.Env().Undefined();
}

// platformClearMemCryptHooks(p, cryptEnv, id) -> whether the hooks `id` of this
// environment were installed (and are now removed).
Napi::Value PlatformClearMemCryptHooks(const Napi::CallbackInfo& info) {
  Platform* p = PlatHandle(info, 0);
  CryptEnv* ce = CryptEnvArg(info, 1);
  const uint32_t id = U32Arg(info, 2);
  CryptHooks* old = nullptr;
  {
    std::lock_guard<std::mutex> g(g_crypt_mu);
    auto it = g_crypt.find(p);
    if (it != g_crypt.end() && it->second->env == ce && it->second->id == id)
      old = SwapHooksLocked(p, nullptr, false, false);
  }
  FreeHooks(old);
  return Napi::Boolean::New(info.Env(), old != nullptr);
}

}  // namespace

void RegisterPlatform(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"platformCreate", PlatformCreate},
      {"platformDispose", PlatformDispose},
      {"platformSetFault", PlatformSetFault},
      {"platformExport", PlatformExport},
      {"platformImport", PlatformImport},
      {"platformStats", PlatformStats},
      {"platformLeaked", PlatformLeaked},
      {"vfioExport", VfioExport},
      {"memCryptInit", MemCryptInit},
      {"platformSetMemCryptHooks", PlatformSetMemCryptHooks},
      {"platformClearMemCryptHooks", PlatformClearMemCryptHooks},
  });
}

}  // namespace dmabuf::addon
