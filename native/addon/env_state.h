// Per-environment state (main thread or a worker): the JS dispatcher for fence
// callbacks and the one uv_async that brings callbacks fired on other threads
// back to this environment's JS thread. Callbacks fired on the JS thread itself
// are queued too and drained by the TypeScript layer right after the call that
// signalled, so they run synchronously from the caller's point of view.
#pragma once

#include <napi.h>
#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "fence.h"

namespace dmabuf::addon {

class EnvState;

// A JS callback registered on a fence: the native side only knows its id; the
// TypeScript registry maps ids to functions and fence objects.
struct JsCallback {
  static constexpr uint32_t kMagic = 0x43424b53;  // "CBKS"
  FenceCallback cb;
  EnvState* env;  // holds a reference
  uint32_t id;
  uint32_t magic;
};

class EnvState {
 public:
  static EnvState* Create(Napi::Env env, Napi::Function dispatch, Napi::Uint8Array pending);
  static EnvState* Get(Napi::Env env);

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();

  // Registers `id` on `f`. Returns 0, -ENOENT (already signalled) or -ENOMEM;
  // on success *token is the node to pass to Remove.
  int Add(Fence* f, uint32_t id, JsCallback** token);
  // true if removed before it fired (the node is freed).
  bool Remove(Fence* f, JsCallback* cb);

  // A completion that is not a fence callback (e.g. an issuer unload finishing
  // on its own thread): NewCompletion(id) on the JS thread reserves the node,
  // then Complete(cb) from any thread delivers `id` to the dispatcher exactly
  // like a fired fence callback, or drops it once the environment is gone.
  // DiscardCompletion(cb) (JS thread) if it will never complete.
  JsCallback* NewCompletion(uint32_t id);
  void Complete(JsCallback* cb) { Enqueue(cb); }
  void DiscardCompletion(JsCallback* cb);

  // Delivers queued callback ids to JS (on the JS thread).
  void Drain(Napi::Env env);

  // While JS waits are pending the loop must not exit under them.
  void KeepLoopAlive(bool on);

  // Pages of fence references owned by JS (see lib/handles.ts). They live as
  // long as the environment; teardown drops whatever JS still held. JS thread only.
  void RegisterBlock(double* slots, size_t n) { blocks_.emplace_back(slots, n); }

 private:
  EnvState() = default;
  static void OnFire(Fence* f, FenceCallback* cb);
  static void OnAsync(uv_async_t* h);
  static void OnCleanup(void* data);
  void Enqueue(JsCallback* cb);

  std::atomic<int> refs_{1};
  std::mutex mu_;
  std::vector<JsCallback*> queue_;
  bool alive_ = true;        // under mu_: the environment still exists
  bool async_armed_ = false; // under mu_: a uv_async_send is outstanding
  pthread_t thread_;
  napi_env env_ = nullptr;
  uv_async_t* async_ = nullptr;
  Napi::FunctionReference dispatch_;
  Napi::Reference<Napi::Uint8Array> pending_ref_;
  uint8_t* pending_ = nullptr;  // pending_[0] = 1 when the JS thread has queued callbacks
  std::vector<std::pair<double*, size_t>> blocks_;
};

}  // namespace dmabuf::addon
