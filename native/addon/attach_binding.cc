// dma_buf_attachment for JavaScript (emulated buffers): attach as a static,
// dynamic or pinned importer, map/unmap the scatterlist, detach. move_notify
// reaches JS through EnvState like a fence callback: queued, then delivered on
// the JS thread (synchronously after the call that revoked, through drain();
// through the uv_async from any other thread). lib/attachment.ts validates.
//
// The buffer's reservation lock serialises all of this. Calls that take it
// return -EDEADLK when this thread already holds it (DmaBuf.resv.lock()),
// except map/unmap, which then run under the held lock as a dynamic importer's
// do in the kernel. A finalizer that finds the lock held by its thread defers
// the detach to the next unlock on that thread (RunDeferredDetaches).
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <string>
#include <vector>

#include "attachment.h"
#include "bindings.h"
#include "dma_buf_obj.h"
#include "dma_buf_resv.h"
#include "env_state.h"
#include "handles.h"
#include "resv.h"

namespace dmabuf::addon {
namespace {

Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// move_notify's target: a JS callback id in the environment that attached.
struct AttNotify {
  EnvState* env;  // a reference
  uint32_t id;
};

// Runs with the reservation lock held, on whatever thread revoked.
void AttNotifyFn(void* data) {
  auto* n = static_cast<AttNotify*>(data);
  n->env->Complete(n->env->NewCompletion(n->id));
}

struct AttMap {
  uint32_t id;
  const SgTable* sgt;
  DmaDataDirection dir;
};

struct AttObj {
  DmaBuf* buf;                 // object reference (the attachment holds a file reference)
  Attachment* a;               // null once detached
  AttNotify* notify = nullptr;
  std::vector<AttMap> maps;    // live importer mappings, unmapped at detach
  uint32_t next_map = 1;
  pthread_t thread;            // the attaching JS thread
};

// Unmaps what JS left mapped, then detaches. The reservation lock must not be
// held by this thread.
void att_detach(AttObj* o) {
  if (!o->a) return;
  if (!o->maps.empty()) {
    dma_buf_resv_lock(o->buf);
    for (const AttMap& m : o->maps) dma_buf_unmap_attachment_locked(o->a, m.sgt, m.dir);
    dma_buf_resv_unlock(o->buf);
    o->maps.clear();
  }
  dma_buf_detach(o->buf, o->a);  // no move_notify after this
  o->a = nullptr;
  if (o->notify) {
    o->notify->env->Unref();
    delete o->notify;
    o->notify = nullptr;
  }
}

void att_free(AttObj* o) {
  att_detach(o);
  dma_buf_obj_put(o->buf);
  delete o;
}

std::mutex g_deferred_mu;
std::vector<AttObj*> g_deferred;

void att_put(AttObj* o) {
  if (o->a && resv_held(dma_buf_resv(o->buf))) {
    std::lock_guard<std::mutex> g(g_deferred_mu);
    g_deferred.push_back(o);
    return;
  }
  att_free(o);
}
using AttHolder = Holder<AttObj, att_put, 0x41544348>;  // "ATCH"

AttObj* AttArg(const Napi::CallbackInfo& info) {
  AttObj* o = AttHolder::From(info[0]);
  if (!o) throw BadHandle(info.Env(), "Attachment handle");
  return o;
}

// bufAttach(b, device, pinned, peer2peer, notifyId: 0 = none) -> External | -errno
Napi::Value BufAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  std::string dev = info[1].As<Napi::String>();
  const bool pinned = info[2].ToBoolean(), p2p = info[3].ToBoolean();
  const uint32_t notify_id = info[4].As<Napi::Number>().Uint32Value();
  if (b->closed) return Num(env, -EBADF);
  if (b->kernel) return Num(env, -EOPNOTSUPP);
  if (resv_held(dma_buf_resv(b->emu))) return Num(env, -EDEADLK);
  RunDeferredDetaches();
  AttNotify* n = nullptr;
  if (notify_id) {
    n = new AttNotify{EnvState::Get(env), notify_id};
    n->env->Ref();
  }
  Attachment* a = nullptr;
  int err = dma_buf_attach_importer(b->emu, dev.c_str(), pinned, p2p, n ? AttNotifyFn : nullptr, n, &a);
  if (err) {
    if (n) {
      n->env->Unref();
      delete n;
    }
    return Num(env, err);
  }
  dma_buf_obj_get(b->emu);
  auto* o = new AttObj{b->emu, a, n, {}, 1, pthread_self()};
  return AttHolder::Wrap(env, o);
}

// attDetach(att) -> 0 | -EDEADLK (lock held by this thread); idempotent
Napi::Value AttDetach(const Napi::CallbackInfo& info) {
  AttObj* o = AttArg(info);
  if (o->a && resv_held(dma_buf_resv(o->buf))) return Num(info.Env(), -EDEADLK);
  att_detach(o);
  return Num(info.Env(), 0);
}

// attMap(att, dir) -> [mapId, [[phys: bigint, length]...], ccShared] | -errno
Napi::Value AttMapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AttObj* o = AttArg(info);
  const uint32_t d = info[1].As<Napi::Number>().Uint32Value();
  if (!o->a) return Num(env, -EBADF);
  if (d > DMA_FROM_DEVICE) return Num(env, -EINVAL);
  const auto dir = static_cast<DmaDataDirection>(d);
  const SgTable* sgt = nullptr;
  const bool held = resv_held(dma_buf_resv(o->buf));
  int err = held ? dma_buf_map_attachment_locked(o->a, dir, &sgt) : dma_buf_map_attachment(o->a, dir, &sgt);
  if (err) return Num(env, err);
  const uint32_t id = o->next_map++;
  o->maps.push_back({id, sgt, dir});
  Napi::Array entries = Napi::Array::New(env, sgt->entries.size());
  for (uint32_t i = 0; i < sgt->entries.size(); ++i) {
    Napi::Array e = Napi::Array::New(env, 2);
    e.Set(0u, Napi::BigInt::New(env, sgt->entries[i].phys));
    e.Set(1u, Num(env, static_cast<double>(sgt->entries[i].length)));
    entries.Set(i, e);
  }
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, Num(env, id));
  out.Set(1u, entries);
  out.Set(2u, Napi::Boolean::New(env, sgt->cc_shared));
  return out;
}

// attUnmap(att, mapId) -> 0 | -EINVAL (not a live mapping of this attachment) | -EBADF
Napi::Value AttUnmapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AttObj* o = AttArg(info);
  const uint32_t id = info[1].As<Napi::Number>().Uint32Value();
  if (!o->a) return Num(env, -EBADF);
  auto it = std::find_if(o->maps.begin(), o->maps.end(), [&](const AttMap& m) { return m.id == id; });
  if (it == o->maps.end()) return Num(env, -EINVAL);
  const AttMap m = *it;
  o->maps.erase(it);
  if (resv_held(dma_buf_resv(o->buf))) {
    dma_buf_unmap_attachment_locked(o->a, m.sgt, m.dir);
  } else {
    dma_buf_unmap_attachment(o->a, m.sgt, m.dir);
  }
  return Num(env, 0);
}

// attInfo(att) -> { moves, cpuSyncs, deviceSyncs, mapped } | -EBADF
Napi::Value AttInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AttObj* o = AttArg(info);
  if (!o->a) return Num(env, -EBADF);
  Napi::Object r = Napi::Object::New(env);
  r.Set("moves", Num(env, static_cast<double>(o->a->moves.load(std::memory_order_relaxed))));
  r.Set("cpuSyncs", Num(env, static_cast<double>(o->a->cpu_syncs.load(std::memory_order_relaxed))));
  r.Set("deviceSyncs", Num(env, static_cast<double>(o->a->device_syncs.load(std::memory_order_relaxed))));
  r.Set("mapped", Num(env, static_cast<double>(o->maps.size())));
  return r;
}

Napi::Value AttDispose(const Napi::CallbackInfo& info) {
  AttHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

}  // namespace

void RunDeferredDetaches() {
  std::vector<AttObj*> run;
  {
    std::lock_guard<std::mutex> g(g_deferred_mu);
    if (g_deferred.empty()) return;
    auto keep = std::partition(g_deferred.begin(), g_deferred.end(), [](AttObj* o) {
      return !pthread_equal(o->thread, pthread_self()) || resv_held(dma_buf_resv(o->buf));
    });
    run.assign(keep, g_deferred.end());
    g_deferred.erase(keep, g_deferred.end());
  }
  for (AttObj* o : run) att_free(o);
}

void RegisterAttach(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"bufAttach", BufAttach}, {"attDetach", AttDetach}, {"attMap", AttMapFn},
      {"attUnmap", AttUnmapFn}, {"attInfo", AttInfo},     {"attDispose", AttDispose},
  };
  for (auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace dmabuf::addon
