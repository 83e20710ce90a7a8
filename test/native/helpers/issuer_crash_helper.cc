// Child process for issuer_crash_test: loads a module, keeps a signalled fence
// across the module's unload, then touches it. With pre-7.1 behaviour (keep_ops)
// the fence still points at the module's ops and the touch faults on unmapped
// memory; with 7.1 detaching it must survive.
//
//   issuer_crash_helper <module.so> <keep|detach|flag> <put|ops-name>
//     keep     load with IssuerLoadOptions::keep_ops
//     detach   load normally (7.1)
//     flag     load normally; the module sets DMABUF_ISSUER_F_KEEP_OPS itself
//     put      drop the last reference after unload (release path)
//     ops-name read the driver name through fence->ops, as pre-7.1 callers did
//
// Prints one line per step (flushed) so the parent can tell where it died.
// Exit 0: survived; 2: usage/setup error.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/base/rcu.h"
#include "core/fence/fence.h"
#include "core/issuer/issuer.h"

using namespace dmabuf;

static void step(const char* s) {
  printf("%s\n", s);
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <module.so> <keep|detach|flag> <put|ops-name>\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[2], action = argv[3];
  IssuerLoadOptions opts;
  opts.keep_ops = mode == "keep";
  Issuer* iss = nullptr;
  std::string err;
  if (Issuer::load(argv[1], opts, &iss, &err) != 0) {
    fprintf(stderr, "load: %s\n", err.c_str());
    return 2;
  }
  Fence* f = nullptr;
  if (iss->create_fence({}, &f, &err) != 0) {
    fprintf(stderr, "create_fence: %s\n", err.c_str());
    return 2;
  }
  fence_signal(f);
  step(iss->keep_ops() ? "loaded keep_ops" : "loaded detaching");
  printf("ops after signal: %s\n", f->ops ? "attached" : "detached");
  if (iss->unload(kMaxScheduleTimeout, &err) != 0) {
    fprintf(stderr, "unload: %s\n", err.c_str());
    return 2;
  }
  iss->put();
  step("unloaded");
  {
    // The 7.1 accessor never dereferences ops of a signalled fence.
    rcu::ReadGuard g;
    printf("fence_driver_name: %s\n", fence_driver_name(f));
  }
  if (action == "ops-name") {
    rcu::ReadGuard g;
    const FenceOps* ops = rcu::dereference(f->ops);
    step("calling ops->get_driver_name");
    printf("ops name: %s\n", ops ? ops->get_driver_name(f) : "(ops detached)");
  }
  step("dropping the fence");
  fence_put(f);
  step("survived");
  return 0;
}
