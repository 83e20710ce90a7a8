// Per-environment state (main thread or a worker), created when the addon
// loads into the environment and torn down by its cleanup hook:
// - the handle tables: every fence reference and every fence callback that JS
//   holds is a token in a table here, never a pointer (see handle_table.h);
// - the JS dispatcher for fence callbacks and the one uv_async that brings
//   callbacks fired on other threads back to this environment's JS thread.
//   Callbacks fired on the JS thread itself are queued too and drained by the
//   TypeScript layer right after the call that signalled, so they run
//   synchronously from the caller's point of view.
// Everything here runs on the environment's JS thread except OnFire/Enqueue
// (any thread) and Ref/Unref.
#pragma once

#include <napi.h>
#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "addon/handle_table.h"
#include "core/base/fault_inject.h"
#include "core/base/interrupt.h"
#include "core/base/monotonic.h"
#include "core/fence/fence.h"
#include <algorithm>

namespace dmabuf::addon {

class EnvState;

// A JS callback registered on a fence, or a completion (fence == nullptr):
// the native side only knows its id; the TypeScript registry maps ids to work.
struct JsCallback {
  FenceCallback cb;
  EnvState* env;   // holds a reference
  Fence* fence;    // holds a reference while registered; null for completions
  double token;    // in EnvState's callback table while registered; 0 otherwise
  uint32_t id;
};

class EnvState {
 public:
  // At module init, once per environment. Throws if the environment is dying.
  static EnvState* Create(Napi::Env env);
  // This environment's state; throws if the addon did not load here.
  static EnvState* Get(Napi::Env env);

  // envInit(): the TypeScript dispatcher, its "callbacks queued" flag, and
  // the DmaBufError class that native failures are built from.
  void SetDispatcher(Napi::Function dispatch, Napi::Uint8Array pending, Napi::Function error_ctor);
  bool HasDispatcher() const { return !dispatch_.IsEmpty(); }
  // DmaBufError, or an empty value before envInit.
  Napi::Function ErrorClass() const { return error_ctor_.IsEmpty() ? Napi::Function() : error_ctor_.Value(); }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();

  // --- fence references held by JS ----------------------------------------
  // Adopts one reference and returns its token; on failure (table full or no
  // memory) the reference is dropped and 0 returned. `unpublished`: the
  // pointer has not left this table (see CreateDefaultFence).
  double AdoptFence(Fence* f, bool unpublished = false);
  // A new default fence (user_fence_create(nullptr, 0, 0, false)) adopted as
  // unpublished: its pointer has not left this table. Returns its token, 0 when
  // the table is full, or -ENOMEM.
  double CreateDefaultFence();
  // The fence behind a live token, or nullptr. The caller may keep or hand on
  // the pointer, so the fence counts as published from here on.
  Fence* FenceOf(double token) { return fences_.GetClearingMark(token); }
  // The same for calls that neither keep nor hand on the pointer (signalling,
  // reading the signalled flag): an unpublished fence stays unpublished.
  // `unpublished` (if given) tells whether it still is.
  Fence* PeekFence(double token, bool* unpublished = nullptr) const { return fences_.Get(token, unpublished); }
  // Drops the reference behind a token; false if it was not live. An
  // unpublished default fence is kept for CreateDefaultFence() instead: nobody
  // else can hold its pointer, so it needs no grace period (user_fence_recycle).
  bool PutFence(double token);
  size_t LiveFences() const { return fences_.live(); }
  size_t SpareFences() const { return spare_fences_.size(); }

  // --- fence callbacks for JS ----------------------------------------------
  // Registers `id` on `f`. Returns 0 with *token set, -ENOENT if `f` is
  // already signalled, or -ENOMEM.
  int Add(Fence* f, uint32_t id, double* token);
  // Fails registrations on demand (tests of the ENOMEM path): armed through
  // the diagFailCallbackAlloc binding.
  static FaultPoint& CallbackAllocFault();
  // Removes a registration: 1 if removed before it fired, 0 if it has fired
  // (or was never live), -EINVAL if the token belongs to another fence.
  int Remove(Fence* f, double token);

  // A completion that is not a fence callback (e.g. an issuer unload finishing
  // on its own thread): NewCompletion(id) reserves the node, then Complete(cb)
  // from any thread delivers `id` to the dispatcher exactly like a fired fence
  // callback, or drops it once the environment is gone. DiscardCompletion(cb)
  // (JS thread) if it will never complete. Returns nullptr without memory.
  JsCallback* NewCompletion(uint32_t id);
  void Complete(JsCallback* cb) { Enqueue(cb); }
  void DiscardCompletion(JsCallback* cb);

  // Delivers queued callback ids to JS (on the JS thread).
  void Drain(Napi::Env env);

  // While JS waits are pending the loop must not exit under them.
  void KeepLoopAlive(bool on);

  // Whether the environment is being torn down (worker.terminate(),
  // process.exit()): JavaScript can no longer run in it. Blocking waits poll
  // this so that teardown never waits for them. JS thread only.
  bool Terminating();

 private:
  EnvState() = default;
  static void OnFire(Fence* f, FenceCallback* cb);
  static void OnAsync(uv_async_t* h);
  static void OnCleanup(void* data);
  void Enqueue(JsCallback* cb);
  void FreeNode(JsCallback* cb);

  std::atomic<int> refs_{1};
  std::mutex mu_;
  std::vector<JsCallback*> queue_;
  bool alive_ = true;        // under mu_: the environment still exists
  bool async_armed_ = false; // under mu_: a uv_async_send is outstanding
  pthread_t thread_;
  bool main_ = false;  // the main thread's environment (the default loop)
  napi_env env_ = nullptr;
  uv_async_t* async_ = nullptr;
  Napi::FunctionReference dispatch_;
  Napi::FunctionReference noop_;
  Napi::FunctionReference error_ctor_;  // called to probe whether JS can still run
  Napi::Reference<Napi::Uint8Array> pending_ref_;
  uint8_t* pending_ = nullptr;  // pending_[0] = 1 when the JS thread has queued callbacks
  uint8_t pending_dummy_ = 0;   // until the dispatcher is set
  HandleTable<Fence> fences_;  // marked: unpublished default fences
  // Unpublished default fences put by JS, already re-initialised, for
  // CreateDefaultFence (a batch of creates and one of puts: two blocks).
  static constexpr size_t kSpareFences = 512;
  std::vector<Fence*> spare_fences_;
  HandleTable<JsCallback> callbacks_;
};

// Blocking waits run in slices of kInterruptPollNs, so that a dying
// environment (worker.terminate(), process.exit()) is noticed even inside an
// issuer's own wait op: `wait(slice_ns)` returns > 0 signalled, 0 timed out,
// < 0 error. Returns what the kernel's wait would (remaining
// time, 0 or -errno), or -EINTR when the environment is being torn down.
template <typename Wait>
long InterruptibleWait(double timeout_ns, Wait wait) {
  const bool forever = timeout_ns < 0;
  if (!forever && timeout_ns <= kInterruptPollNs) return wait(static_cast<int64_t>(timeout_ns));
  const int64_t deadline = forever ? 0 : monotonic_ns() + static_cast<int64_t>(std::min(timeout_ns, 9.2e18));
  for (;;) {
    int64_t slice = kInterruptPollNs;
    if (!forever) slice = std::min<int64_t>(slice, std::max<int64_t>(deadline - monotonic_ns(), 0));
    const long r = wait(slice);
    if (r < 0) return r;
    if (r > 0) {
      if (forever) return kMaxScheduleTimeout;
      const int64_t left = deadline - monotonic_ns();
      return left > 0 ? static_cast<long>(left) : 1;
    }
    if (!forever && monotonic_ns() >= deadline) return 0;
    if (interrupt_pending()) return -EINTR;  // the thread's check: EnvState::Terminating
  }
}

}  // namespace dmabuf::addon
