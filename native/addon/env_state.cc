#include "env_state.h"

#include "handles.h"

#include <cerrno>
#include <new>

namespace dmabuf::addon {

EnvState* EnvState::Create(Napi::Env env, Napi::Function dispatch, Napi::Uint8Array pending) {
  auto* s = new EnvState();
  s->thread_ = pthread_self();
  s->env_ = env;
  s->dispatch_ = Napi::Persistent(dispatch);
  s->pending_ref_ = Napi::Persistent(pending);
  s->pending_ = pending.Data();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  s->async_ = new uv_async_t;
  s->async_->data = s;
  uv_async_init(loop, s->async_, OnAsync);
  // Only callbacks keep the loop alive, not this handle.
  uv_unref(reinterpret_cast<uv_handle_t*>(s->async_));
  napi_add_env_cleanup_hook(env, OnCleanup, s);
  return s;
}

void EnvState::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

int EnvState::Add(Fence* f, uint32_t id, JsCallback** token) {
  auto* cb = new (std::nothrow) JsCallback;
  if (!cb) return -ENOMEM;
  cb->env = this;
  cb->id = id;
  cb->magic = JsCallback::kMagic;
  Ref();
  int r = fence_add_callback(f, &cb->cb, OnFire);
  if (r != 0) {
    Unref();
    delete cb;
    return r;
  }
  *token = cb;
  return 0;
}

JsCallback* EnvState::NewCompletion(uint32_t id) {
  auto* cb = new JsCallback;
  cb->env = this;
  cb->id = id;
  cb->magic = JsCallback::kMagic;
  Ref();
  return cb;
}

void EnvState::DiscardCompletion(JsCallback* cb) {
  cb->magic = 0;
  delete cb;
  Unref();
}

bool EnvState::Remove(Fence* f, JsCallback* cb) {
  if (!fence_remove_callback(f, &cb->cb)) return false;
  cb->magic = 0;
  cb->env->Unref();
  delete cb;
  return true;
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
  if (dead) {  // the environment is gone: nobody to call
    delete cb;
    Unref();
  }
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
  Napi::HandleScope scope(env);
  Napi::Array ids = Napi::Array::New(env, batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    ids.Set(static_cast<uint32_t>(i), Napi::Number::New(env, batch[i]->id));
    Unref();  // the callback's reference; `this` is still held by the env
    delete batch[i];
  }
  dispatch_.Call({ids});
}

void EnvState::OnAsync(uv_async_t* h) {
  auto* s = static_cast<EnvState*>(h->data);
  {
    std::lock_guard<std::mutex> g(s->mu_);
    s->async_armed_ = false;
  }
  Napi::Env env(s->env_);
  Napi::HandleScope scope(env);
  try {
    s->Drain(env);
  } catch (const Napi::Error& e) {
    // The TS dispatcher re-throws user errors asynchronously; anything here is
    // ours, so make it an uncaught exception rather than losing it.
    napi_fatal_exception(s->env_, e.Value());
  }
}

void EnvState::OnCleanup(void* data) {
  auto* s = static_cast<EnvState*>(data);
  // Drop every fence reference JS still held.
  for (auto& [slots, n] : s->blocks_) {
    for (size_t i = 0; i < n; ++i) {
      if (Fence* f = DoubleToPtr<Fence>(slots[i])) fence_put(f);
      slots[i] = 0;
    }
  }
  s->blocks_.clear();
  std::vector<JsCallback*> batch;
  {
    std::lock_guard<std::mutex> g(s->mu_);
    s->alive_ = false;
    batch.swap(s->queue_);
  }
  for (auto* cb : batch) {
    s->Unref();
    delete cb;
  }
  s->dispatch_.Reset();
  s->pending_ref_.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(s->async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  s->Unref();  // the environment's own reference
}

}  // namespace dmabuf::addon
