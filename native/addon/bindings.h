// What each binding file registers, and the few helpers they share.
#pragma once

#include <napi.h>

#include <vector>

#include "core/fence/fence.h"
#include "kernel/fd.h"
#include "kernel/kerror.h"

namespace dmabuf {
struct DmaBuf;
struct SyncFile;
}  // namespace dmabuf

namespace dmabuf::addon {

void RegisterEnv(Napi::Env env, Napi::Object exports);
void RegisterFence(Napi::Env env, Napi::Object exports);
void RegisterIssuer(Napi::Env env, Napi::Object exports);
void RegisterBench(Napi::Env env, Napi::Object exports);
void RegisterContainers(Napi::Env env, Napi::Object exports);
void RegisterResv(Napi::Env env, Napi::Object exports);
void RegisterSyncFile(Napi::Env env, Napi::Object exports);
void RegisterSwSync(Napi::Env env, Napi::Object exports);
void RegisterFdChannel(Napi::Env env, Napi::Object exports);
void RegisterHeap(Napi::Env env, Napi::Object exports);
void RegisterUdmabuf(Napi::Env env, Napi::Object exports);
void RegisterPlatform(Napi::Env env, Napi::Object exports);
void RegisterDmaBuf(Napi::Env env, Napi::Object exports);
void RegisterAttach(Napi::Env env, Napi::Object exports);

// Fence handles (tokens in the environment's table, see env_state.h), for
// bindings of other classes that take or return fences.
Fence* FenceFromHandle(const Napi::Value& v);          // nullptr if not a live fence token
Napi::Value WrapFence(Napi::Env env, Fence* adopted);  // adopts one reference; throws ENOMEM
// New references as an array of tokens; if that fails part-way, the references
// not yet handed out are dropped.
Napi::Array WrapFenceList(Napi::Env env, const std::vector<Fence*>& adopted);
// handles[] at info[i]: every element a live token, or it throws (EBADF).
std::vector<Fence*> FenceListArg(const Napi::CallbackInfo& info, size_t i);

// A kernel dma-buf fd as a DmaBuf handle of heap_binding.cc (adopts the fd).
Napi::Value WrapKernelDmaBuf(Napi::Env env, int fd);
// sync_file handles, either backend: addon/sync_file_obj.h.

// A Resv handle on a dma-buf's reservation object; takes a file reference.
Napi::Value WrapBufResv(Napi::Env env, DmaBuf* buf);
// Detaches attachments whose finalizer ran while this thread held their
// buffer's reservation lock (attach_binding.cc); called after unlocking.
void RunDeferredDetaches();

}  // namespace dmabuf::addon
