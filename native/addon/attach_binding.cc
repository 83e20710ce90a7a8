// dma_buf_attachment for JavaScript (emulated buffers): attach as a static,
// dynamic or pinned importer, map/unmap the scatterlist, detach. move_notify
// reaches JS through EnvState like a fence callback: queued, then delivered on
// the JS thread (synchronously after the call that revoked, through drain();
// through the uv_async from any other thread). lib/attachment.ts validates.
//
// The buffer's reservation lock serialises all of this. The core's calls that
// take it answer -EDEADLK when this thread already holds it
// (DmaBuf.resv.lock()); map/unmap use its _any variants, which run under the
// held lock as a dynamic importer's do in the kernel. A finalizer that finds
// the lock held by its thread defers the detach to the next unlock on that
// thread (RunDeferredDetaches). Failures throw DmaBufError.
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/dma_buf_obj.h"
#include "addon/env_state.h"
#include "addon/handles.h"
#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf_resv.h"

namespace dmabuf::addon {
namespace {

Napi::Error LockedByCaller(Napi::Env env, const char* op) {
  return ErrnoError(env, -EDEADLK, op, "this thread holds the buffer's reservation lock (resv.lock()): unlock it first");
}

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

// Unmaps what JS left mapped, then detaches: 0, or -EDEADLK (nothing done)
// when this thread holds the reservation lock.
int att_detach(AttObj* o) {
  if (!o->a) return 0;
  while (!o->maps.empty()) {
    const AttMap& m = o->maps.back();
    if (int err = dma_buf_unmap_attachment(o->a, m.sgt, m.dir)) return err;  // the first one, or none
    o->maps.pop_back();
  }
  if (int err = dma_buf_detach(o->buf, o->a)) return err;  // no move_notify after this
  o->a = nullptr;
  if (o->notify) {
    o->notify->env->Unref();
    delete o->notify;
    o->notify = nullptr;
  }
  return 0;
}

void att_free(AttObj* o) {
  (void)att_detach(o);  // never under this thread's lock: att_put defers those
  dma_buf_obj_put(o->buf);
  delete o;
}

std::mutex g_deferred_mu;
std::vector<AttObj*> g_deferred;

void att_put(AttObj* o) {
  if (o->a && dma_buf_resv_held(o->buf)) {
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

// bufAttach(b, device, pinned, peer2peer, notifyId: 0 = none) -> External
Napi::Value BufAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "dma_buf_attach";
  BufObj* b = BufArgAt(info, 0);
  if (!info[1].IsString() || !info[4].IsNumber()) throw BadArg(env, "bufAttach(buf, device, pinned, peer2peer, notifyId)");
  std::string dev = info[1].As<Napi::String>();
  const bool pinned = info[2].ToBoolean(), p2p = info[3].ToBoolean();
  const uint32_t notify_id = info[4].As<Napi::Number>().Uint32Value();
  if (b->closed) throw ErrnoError(env, -EBADF, kOp, "dma-buf is closed");
  if (b->kernel)
    throw ErrnoError(env, -EOPNOTSUPP, kOp, "attachments of a kernel dma-buf are made by kernel drivers, not from userspace");
  RunDeferredDetaches();
  // Everything that can throw before the core attaches.
  auto* o = new AttObj{b->emu, nullptr, nullptr, {}, 1, pthread_self()};
  AttNotify* n = nullptr;
  if (notify_id) {
    try {
      n = new AttNotify{EnvState::Get(env), notify_id};
    } catch (...) {
      delete o;
      throw;
    }
    n->env->Ref();
  }
  Attachment* a = nullptr;
  int err = dma_buf_attach_importer(b->emu, dev.c_str(), pinned, p2p, n ? AttNotifyFn : nullptr, n, &a);
  if (err) {
    if (n) {
      n->env->Unref();
      delete n;
    }
    delete o;
    if (err == -EDEADLK) throw LockedByCaller(env, kOp);
    throw ErrnoError(env, err, kOp, pinned ? "pinned attach refused by the exporter" : "attach refused by the exporter");
  }
  dma_buf_obj_get(b->emu);
  o->a = a;
  o->notify = n;
  return AttHolder::Wrap(env, o);
}

// attDetach(att): EDEADLK while this thread holds the lock; idempotent
Napi::Value AttDetach(const Napi::CallbackInfo& info) {
  if (att_detach(AttArg(info)) == -EDEADLK) throw LockedByCaller(info.Env(), "dma_buf_detach");
  return info.Env().Undefined();
}

// attMap(att, dir) -> [mapId, [[phys: bigint, length]...], ccShared]
Napi::Value AttMapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "dma_buf_map_attachment";
  AttObj* o = AttArg(info);
  if (!info[1].IsNumber()) throw BadArg(env, "expected a direction number");
  const uint32_t d = info[1].As<Napi::Number>().Uint32Value();
  if (!o->a) throw ErrnoError(env, -EBADF, kOp, "the attachment is detached");
  if (d > DMA_FROM_DEVICE) throw ErrnoError(env, -EINVAL, kOp, "bad direction");
  const auto dir = static_cast<DmaDataDirection>(d);
  o->maps.reserve(o->maps.size() + 1);  // no bad_alloc after the mapping is made
  const SgTable* sgt = nullptr;
  int err = dma_buf_map_attachment_any(o->a, dir, &sgt);
  if (err) throw ErrnoError(env, err, kOp, "mapping the attachment");
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

// attUnmap(att, mapId): EINVAL (not a live mapping of this attachment), EBADF
Napi::Value AttUnmapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "dma_buf_unmap_attachment";
  AttObj* o = AttArg(info);
  if (!info[1].IsNumber()) throw BadArg(env, "expected a mapping id");
  const uint32_t id = info[1].As<Napi::Number>().Uint32Value();
  if (!o->a) throw ErrnoError(env, -EBADF, kOp, "the attachment is detached");
  auto it = std::find_if(o->maps.begin(), o->maps.end(), [&](const AttMap& m) { return m.id == id; });
  if (it == o->maps.end()) throw ErrnoError(env, -EINVAL, kOp, "not a live mapping of this attachment");
  const AttMap m = *it;
  o->maps.erase(it);
  dma_buf_unmap_attachment_any(o->a, m.sgt, m.dir);
  return env.Undefined();
}

// attInfo(att) -> { moves, cpuSyncs, deviceSyncs, mapped }
Napi::Value AttInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AttObj* o = AttArg(info);
  if (!o->a) throw ErrnoError(env, -EBADF, "dma_buf_attachment", "the attachment is detached");
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
      return !pthread_equal(o->thread, pthread_self()) || dma_buf_resv_held(o->buf);
    });
    run.assign(keep, g_deferred.end());
    g_deferred.erase(keep, g_deferred.end());
  }
  for (AttObj* o : run) att_free(o);
}

void RegisterAttach(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"bufAttach", BufAttach}, {"attDetach", AttDetach}, {"attMap", AttMapFn},
      {"attUnmap", AttUnmapFn}, {"attInfo", AttInfo},     {"attDispose", AttDispose},
  });
}

}  // namespace dmabuf::addon
