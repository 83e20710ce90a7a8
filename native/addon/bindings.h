// What each binding file registers, and the few helpers they share.
#pragma once

#include <napi.h>

#include "fence.h"

namespace dmabuf::addon {

void RegisterEnv(Napi::Env env, Napi::Object exports);
void RegisterFence(Napi::Env env, Napi::Object exports);
void RegisterIssuer(Napi::Env env, Napi::Object exports);
void RegisterBench(Napi::Env env, Napi::Object exports);
void RegisterContainers(Napi::Env env, Napi::Object exports);
void RegisterResv(Napi::Env env, Napi::Object exports);
void RegisterSyncFile(Napi::Env env, Napi::Object exports);
void RegisterHeap(Napi::Env env, Napi::Object exports);
void RegisterUdmabuf(Napi::Env env, Napi::Object exports);

// Fence handles, for bindings of other classes that take or return fences.
Fence* FenceFromHandle(const Napi::Value& v);          // nullptr if not a live fence handle
Napi::Value WrapFence(Napi::Env env, Fence* adopted);  // adopts one reference

// A kernel dma-buf fd as a DmaBuf handle of heap_binding.cc (adopts the fd).
Napi::Value WrapKernelDmaBuf(Napi::Env env, int fd);

}  // namespace dmabuf::addon
