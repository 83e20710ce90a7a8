// The dmabuf addon: module init only. Each exported area registers itself from
// its own file (see bindings.h).
#include <napi.h>

#include "addon/bindings.h"
#include "addon/env_state.h"
#include "core/base/rcu.h"

namespace dmabuf::addon {

// Runs once per environment (main thread and each worker). A worker can be
// terminated while it is still inside require(): every napi call may then fail,
// which throws a Napi::Error that node-addon-api turns into a JS exception (or
// drops, the environment being gone) instead of letting it escape.
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  rcu::init();  // create the call_rcu worker now, with signals blocked
  EnvState::Create(env);
  RegisterEnv(env, exports);
  RegisterFence(env, exports);
  RegisterIssuer(env, exports);
  RegisterBench(env, exports);
  RegisterContainers(env, exports);
  RegisterResv(env, exports);
  RegisterSyncFile(env, exports);
  RegisterSwSync(env, exports);
  RegisterFdChannel(env, exports);
  RegisterHeap(env, exports);
  RegisterUdmabuf(env, exports);
  RegisterPlatform(env, exports);
  RegisterDmaBuf(env, exports);
  RegisterAttach(env, exports);
  return exports;
}

}  // namespace dmabuf::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return dmabuf::addon::Init(env, exports);
}
NODE_API_MODULE(dmabuf, InitModule)
