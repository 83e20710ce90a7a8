// Fence container bindings (dma_fence_array, dma_fence_chain, dma_fence_unwrap):
// flat functions over fence handles. The TypeScript layer validates every
// argument (lib/containers.ts); these only convert and call the core, and
// throw its failures as DmaBufError.
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/handles.h"
#include "core/fence/array.h"
#include "core/fence/chain.h"
#include "core/fence/unwrap.h"

namespace dmabuf::addon {
namespace {

Fence* FenceArg(const Napi::CallbackInfo& info, size_t i) {
  Fence* f = FenceFromHandle(info[i]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  return f;
}

// fenceKind(h) -> 0 plain, 1 array, 2 chain
Napi::Value FenceKind(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  return Napi::Number::New(info.Env(), fence_is_array(f) ? 1 : fence_is_chain(f) ? 2 : 0);
}

// fenceGetError(h): 0 or a negative errno, never an array's pending sentinel.
Napi::Value FenceGetError(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fence_get_error(FenceArg(info, 0)));
}

// fenceArrayCreate(handles[], context: bigint, seqno: bigint (u32), signalOnAny) -> handle; ENOMEM
Napi::Value FenceArrayCreate(const Napi::CallbackInfo& info) {
  std::vector<Fence*> list = FenceListArg(info, 0);
  const uint64_t ctx = U64Arg(info, 1);
  const uint64_t seqno = U64Arg(info, 2);
  if (seqno > UINT32_MAX) throw Napi::RangeError::New(info.Env(), "dmabuf: an array's seqno is 32 bits");
  const bool signal_on_any = info[3].ToBoolean();
  auto** fences = static_cast<Fence**>(std::malloc(sizeof(Fence*) * (list.size() ? list.size() : 1)));
  if (!fences) throw ErrnoError(info.Env(), -ENOMEM, "dma_fence_array_create", "out of memory");
  for (size_t k = 0; k < list.size(); ++k) fences[k] = fence_get(list[k]);
  FenceArray* a = fence_array_create(static_cast<int>(list.size()), fences, ctx,
                                     static_cast<unsigned>(seqno), signal_on_any);
  if (!a) {
    for (size_t k = 0; k < list.size(); ++k) fence_put(fences[k]);
    std::free(fences);
    throw ErrnoError(info.Env(), -ENOMEM, "dma_fence_array_create", "out of memory");
  }
  return WrapFence(info.Env(), &a->base);
}

// fenceArrayMembers(h) -> handles[] (new references), or null if not an array
Napi::Value FenceArrayMembers(const Napi::CallbackInfo& info) {
  FenceArray* a = to_fence_array(FenceArg(info, 0));
  if (!a) return info.Env().Null();
  std::vector<Fence*> out(a->num_fences);
  for (unsigned k = 0; k < a->num_fences; ++k) out[k] = fence_get(a->fences[k]);
  return WrapFenceList(info.Env(), out);
}

// fenceMatchContext(h, context: bigint)
Napi::Value FenceMatchContext(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  return Napi::Boolean::New(info.Env(), fence_match_context(f, U64Arg(info, 1)));
}

// fenceChainCreate(prev: handle | 0, fence: handle, seqno: bigint) -> handle; ENOMEM
Napi::Value FenceChainCreate(const Napi::CallbackInfo& info) {
  Fence* prev = info[0].IsNumber() && info[0].As<Napi::Number>().DoubleValue() == 0 ? nullptr
                                                                                    : FenceArg(info, 0);
  Fence* fence = FenceArg(info, 1);
  const uint64_t seqno = U64Arg(info, 2);
  FenceChain* c = fence_chain_alloc();
  if (!c) throw ErrnoError(info.Env(), -ENOMEM, "dma_fence_chain_alloc", "out of memory");
  fence_chain_init(c, fence_get(prev), fence_get(fence), seqno);
  return WrapFence(info.Env(), &c->base);
}

// fenceChainParts(h) -> [prev handle | 0, contained handle] (new references), or null
Napi::Value FenceChainParts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FenceChain* c = to_fence_chain(FenceArg(info, 0));
  if (!c) return env.Null();
  Fence* prev;
  {
    rcu::ReadGuard rcu;  // prev may be unlinked (and put) concurrently by a walk
    prev = fence_get_rcu_safe(&c->prev);
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, prev ? WrapFence(env, prev) : Napi::Number::New(env, 0));
  out.Set(1u, WrapFence(env, fence_get(c->fence)));
  return out;
}

// fenceChainWalk(h) -> handle of the previous unsignalled point (new reference), or 0
Napi::Value FenceChainWalk(const Napi::CallbackInfo& info) {
  Fence* next = fence_chain_walk(fence_get(FenceArg(info, 0)));
  return next ? WrapFence(info.Env(), next) : Napi::Number::New(info.Env(), 0);
}

// fenceChainFindSeqno(h, seqno: bigint) -> handle (new reference), or 0 (all
// signalled); EINVAL for a point after this node
Napi::Value FenceChainFindSeqno(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  const uint64_t seqno = U64Arg(info, 1);
  Fence* cur = fence_get(f);
  int r = fence_chain_find_seqno(&cur, seqno);
  if (r < 0) {
    fence_put(cur);
    throw ErrnoError(info.Env(), r, "dma_fence_chain_find_seqno",
                     "point " + std::to_string(seqno) + " is after this node (" + std::to_string(f->seqno) + ")");
  }
  return cur ? WrapFence(info.Env(), cur) : Napi::Number::New(info.Env(), 0);
}

// fenceUnwrap(h) -> handles[]: every leaf, each a new reference
Napi::Value FenceUnwrapAll(const Napi::CallbackInfo& info) {
  Fence* head = FenceArg(info, 0);
  std::vector<Fence*> out;
  FenceUnwrap cursor;
  for (Fence* f = fence_unwrap_first(head, &cursor); f; f = fence_unwrap_next(&cursor)) {
    out.push_back(fence_get(f));
  }
  return WrapFenceList(info.Env(), out);
}

// fenceMerge(handles[]) -> handle (new reference); ENOMEM
Napi::Value FenceMerge(const Napi::CallbackInfo& info) {
  std::vector<Fence*> list = FenceListArg(info, 0);
  std::vector<FenceUnwrap> cursors(list.size());
  Fence* r = fence_unwrap_merge_array(static_cast<unsigned>(list.size()), list.data(), cursors.data());
  if (!r) throw ErrnoError(info.Env(), -ENOMEM, "dma_fence_unwrap_merge", "out of memory");
  return WrapFence(info.Env(), r);
}

// fenceDedup(handles[]) -> handles[]: the latest per context, ascending context
Napi::Value FenceDedup(const Napi::CallbackInfo& info) {
  std::vector<Fence*> list = FenceListArg(info, 0);
  for (Fence*& f : list) f = fence_get(f);
  int n = fence_dedup_array(list.data(), static_cast<int>(list.size()));
  list.resize(static_cast<size_t>(n));
  return WrapFenceList(info.Env(), list);
}

// fenceDup(h) -> a new reference to the same fence
Napi::Value FenceDup(const Napi::CallbackInfo& info) {
  return WrapFence(info.Env(), fence_get(FenceArg(info, 0)));
}

}  // namespace

void RegisterContainers(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"fenceKind", FenceKind},
      {"fenceGetError", FenceGetError},
      {"fenceArrayCreate", FenceArrayCreate},
      {"fenceArrayMembers", FenceArrayMembers},
      {"fenceMatchContext", FenceMatchContext},
      {"fenceChainCreate", FenceChainCreate},
      {"fenceChainParts", FenceChainParts},
      {"fenceChainWalk", FenceChainWalk},
      {"fenceChainFindSeqno", FenceChainFindSeqno},
      {"fenceUnwrap", FenceUnwrapAll},
      {"fenceMerge", FenceMerge},
      {"fenceDedup", FenceDedup},
      {"fenceDup", FenceDup},
  });
}

}  // namespace dmabuf::addon
