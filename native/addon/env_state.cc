#include "addon/env_state.h"

#include <cerrno>
#include <new>

#include "addon/export_registry.h"
#include "core/base/warn.h"
#include "core/fence/user_fence.h"

namespace dmabuf::addon {
namespace {

napi_value Noop(napi_env, napi_callback_info) { return nullptr; }

// The JS thread's interrupt check (interrupt.h): interruptible sleeps in the
// core (a Resv lock) end with -EINTR once the environment is torn down.
bool EnvDying(void* data) { return static_cast<EnvState*>(data)->Terminating(); }

// The cleanup hook owns EnvState; instance data only points at it.
void KeepEnvState(Napi::Env, EnvState*) {}

}  // namespace

EnvState* EnvState::Create(Napi::Env env) {
  auto* s = new EnvState();
  s->spare_fences_.reserve(kSpareFences);
  s->thread_ = pthread_self();
  s->env_ = env;
  s->pending_ = &s->pending_dummy_;
  napi_value noop;
  if (napi_create_function(env, "noop", NAPI_AUTO_LENGTH, Noop, nullptr, &noop) != napi_ok) {
    delete s;
    throw Napi::Error::New(env, "dmabuf: cannot initialise the environment");
  }
  s->noop_ = Napi::Persistent(Napi::Function(env, noop));
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    delete s;
    throw Napi::Error::New(env, "dmabuf: no event loop in this environment");
  }
  s->main_ = loop == uv_default_loop();
  s->async_ = new uv_async_t;
  s->async_->data = s;
  uv_async_init(loop, s->async_, OnAsync);
  // Only callbacks keep the loop alive, not this handle.
  uv_unref(reinterpret_cast<uv_handle_t*>(s->async_));
  napi_add_env_cleanup_hook(env, OnCleanup, s);
  set_interrupt_check(EnvDying, s);
  env.SetInstanceData<EnvState, KeepEnvState>(s);
  return s;
}

EnvState* EnvState::Get(Napi::Env env) {
  EnvState* s = env.GetInstanceData<EnvState>();
  if (!s) throw Napi::Error::New(env, "dmabuf: the addon is not initialised in this environment");
  return s;
}

void EnvState::SetDispatcher(Napi::Function dispatch, Napi::Uint8Array pending,
                             Napi::Function error_ctor) {
  dispatch_ = Napi::Persistent(dispatch);
  error_ctor_ = Napi::Persistent(error_ctor);
  pending_ref_ = Napi::Persistent(pending);
  pending_ = pending.Data();
}

void EnvState::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

double EnvState::AdoptFence(Fence* f, bool unpublished) {
  double t = 0;
  try {
    t = fences_.Insert(f, unpublished);
  } catch (const std::bad_alloc&) {
  }
  if (t == 0) fence_put(f);
  return t;
}

double EnvState::CreateDefaultFence() {
  Fence* f;
  if (!spare_fences_.empty()) {
    f = spare_fences_.back();
    spare_fences_.pop_back();
  } else if (!(f = user_fence_create(nullptr, 0, 0, false))) {
    return -ENOMEM;
  }
  return AdoptFence(f, /*unpublished=*/true);
}

bool EnvState::PutFence(double token) {
  bool unpublished = false;
  Fence* f = fences_.Take(token, &unpublished);
  if (!f) return false;
  if (unpublished && spare_fences_.size() < kSpareFences && user_fence_recycle(f)) {
    spare_fences_.push_back(f);  // capacity reserved: never reallocates
    return true;
  }
  fence_put(f);
  return true;
}

FaultPoint& EnvState::CallbackAllocFault() {
  static FaultPoint point;
  return point;
}

int EnvState::Add(Fence* f, uint32_t id, double* token) {
  if (int err = CallbackAllocFault().check(-ENOMEM)) return err;
  auto* cb = new (std::nothrow) JsCallback;
  if (!cb) return -ENOMEM;
  try {
    cb->token = callbacks_.Insert(cb);
  } catch (const std::bad_alloc&) {
    cb->token = 0;
  }
  if (cb->token == 0) {
    delete cb;
    return -ENOMEM;
  }
  cb->env = this;
  cb->fence = fence_get(f);
  cb->id = id;
  Ref();
  int r = fence_add_callback(f, &cb->cb, OnFire);
  if (r != 0) {
    callbacks_.Take(cb->token);
    FreeNode(cb);
    return r;
  }
  *token = cb->token;
  return 0;
}

int EnvState::Remove(Fence* f, double token) {
  JsCallback* cb = callbacks_.Get(token);
  if (!cb) return 0;  // fired and delivered, or never ours
  if (cb->fence != f) return -EINVAL;
  if (!fence_remove_callback(f, &cb->cb)) return 0;  // fired: queued for Drain
  callbacks_.Take(token);
  FreeNode(cb);
  return 1;
}

JsCallback* EnvState::NewCompletion(uint32_t id) {
  auto* cb = new (std::nothrow) JsCallback;
  if (!cb) return nullptr;
  cb->env = this;
  cb->fence = nullptr;
  cb->token = 0;
  cb->id = id;
  Ref();
  return cb;
}

void EnvState::DiscardCompletion(JsCallback* cb) { FreeNode(cb); }

// Drops what a node holds (its fence and environment references) and frees it.
void EnvState::FreeNode(JsCallback* cb) {
  if (cb->fence) fence_put(cb->fence);
  EnvState* s = cb->env;
  delete cb;
  s->Unref();
}

void EnvState::OnFire(Fence*, FenceCallback* fcb) {
  auto* cb = container_of(fcb, &JsCallback::cb);
  cb->env->Enqueue(cb);
}

void EnvState::Enqueue(JsCallback* cb) {
  bool dead = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!alive_) {
      dead = true;
    } else {
      queue_.push_back(cb);
      if (pthread_equal(thread_, pthread_self())) pending_[0] = 1;
      // Under mu_: cleanup closes the handle under the same lock.
      if (!async_armed_) uv_async_send(async_);
      async_armed_ = true;
    }
  }
  // The environment is gone: nobody to call. (Its callback table went with
  // it, so the token is no longer in any table.)
  if (dead) FreeNode(cb);
}

void EnvState::KeepLoopAlive(bool on) {
  if (on) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  else uv_unref(reinterpret_cast<uv_handle_t*>(async_));
}

void EnvState::Drain(Napi::Env env) {
  std::vector<JsCallback*> batch;
  {
    std::lock_guard<std::mutex> g(mu_);
    batch.swap(queue_);
    pending_[0] = 0;
  }
  if (batch.empty()) return;
  // Retire every node before any JS runs: a callback may dispose, abort or
  // unregister the others, and their tokens must already be dead by then.
  std::vector<uint32_t> ids;
  ids.reserve(batch.size());
  for (JsCallback* cb : batch) {
    if (cb->token != 0) callbacks_.Take(cb->token);
    ids.push_back(cb->id);
    FreeNode(cb);  // its Unref never drops the environment's own reference
  }
  if (dispatch_.IsEmpty()) return;
  Napi::HandleScope scope(env);
  Napi::Array arr = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, ids[i]));
  dispatch_.Call({arr});
}

bool EnvState::Terminating() {
  if (noop_.IsEmpty()) return true;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return true;
  napi_value global, result;
  bool dying = napi_get_global(env_, &global) != napi_ok ||
               napi_call_function(env_, global, noop_.Value(), 0, nullptr, &result) != napi_ok;
  napi_close_handle_scope(env_, scope);
  return dying;
}

void EnvState::OnAsync(uv_async_t* h) {
  auto* s = static_cast<EnvState*>(h->data);
  {
    std::lock_guard<std::mutex> g(s->mu_);
    s->async_armed_ = false;
  }
  // A C callback of libuv's: nothing may escape from here. The TS dispatcher
  // re-throws user errors asynchronously, so anything caught is ours or the
  // environment dying; report the former as an uncaught exception.
  try {
    Napi::Env env(s->env_);
    Napi::HandleScope scope(env);
    try {
      s->Drain(env);
    } catch (const Napi::Error& e) {
      if (!s->Terminating()) napi_fatal_exception(s->env_, e.Value());
    }
  } catch (...) {
  }
}

void EnvState::OnCleanup(void* data) {
  auto* s = static_cast<EnvState*>(data);
  set_interrupt_check(nullptr, nullptr);
  // Registrations still on fences come off first, while the environment still
  // counts as alive: one that is firing right now is then queued (callbacks
  // run under the fence lock, which fence_remove_callback waits for) instead
  // of freed under us.
  std::vector<JsCallback*> registered;
  s->callbacks_.Clear([&](JsCallback* cb) { registered.push_back(cb); });
  for (JsCallback* cb : registered)
    if (fence_remove_callback(cb->fence, &cb->cb)) s->FreeNode(cb);
  // Every fence reference JS still held.
  s->fences_.Clear([](Fence* f) { fence_put(f); });
  for (Fence* f : s->spare_fences_) fence_put(f);
  s->spare_fences_.clear();
  // Handles exported from here and never imported: orphaned, or dropped when
  // the main environment (the process) ends.
  ExportRegistryBase::EnvGone(s, s->main_);
  std::vector<JsCallback*> batch;
  {
    std::lock_guard<std::mutex> g(s->mu_);
    s->alive_ = false;  // from here completions are dropped by Enqueue
    batch.swap(s->queue_);
    // Under mu_: Enqueue sends on the handle under the same lock.
    uv_close(reinterpret_cast<uv_handle_t*>(s->async_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  }
  for (auto* cb : batch) s->FreeNode(cb);
  s->dispatch_.Reset();
  s->noop_.Reset();
  s->error_ctor_.Reset();
  s->pending_ref_.Reset();
  s->pending_ = &s->pending_dummy_;
  s->Unref();  // the environment's own reference
}

}  // namespace dmabuf::addon
