// Test module written in C++: the ABI header works from C++ too (extern "C"
// entry points via DMABUF_ISSUER_MODULE). Names-only fences, signalled by the
// caller, remaining ones cancelled at unload.
#include <dmabuf/issuer.h>

#include <cerrno>
#include <mutex>
#include <new>
#include <vector>

namespace {

struct Instance {
  const dmabuf_core_api* api;
  dmabuf_issuer* issuer;
  uint64_t context;
  uint64_t seqno = 0;
  std::mutex mu;
  std::vector<dmabuf_fence*> owned;
};

const char* driver(dmabuf_fence*) { return "cxx-driver"; }
const char* timeline(dmabuf_fence*) { return "cxx-timeline"; }
constexpr dmabuf_fence_ops kOps = {.get_driver_name = driver, .get_timeline_name = timeline};

int create(void* priv, const dmabuf_fence_args*, dmabuf_fence** out) {
  auto* in = static_cast<Instance*>(priv);
  dmabuf_fence* f = in->api->fence_alloc(in->issuer, 0);
  if (!f) return -ENOMEM;
  std::lock_guard<std::mutex> g(in->mu);
  in->api->fence_init(f, nullptr, in->context, ++in->seqno);
  in->owned.push_back(in->api->fence_get(f));
  *out = f;
  return 0;
}

void signal_all(void* priv) {
  auto* in = static_cast<Instance*>(priv);
  std::vector<dmabuf_fence*> owned;
  {
    std::lock_guard<std::mutex> g(in->mu);
    owned.swap(in->owned);
  }
  for (dmabuf_fence* f : owned) {
    in->api->fence_lock(f);
    if (!in->api->fence_test_signaled_flag(f)) {
      in->api->fence_set_error(f, -ECANCELED);
      in->api->fence_signal_locked(f);
    }
    in->api->fence_unlock(f);
    in->api->fence_put(f);
  }
}

void shutdown(void* priv) { delete static_cast<Instance*>(priv); }

constexpr dmabuf_issuer_ops kIssuerOps = {
    .create_fence = create,
    .signal_all = signal_all,
    .shutdown = shutdown,
};

int cxx_init(const dmabuf_core_api* api, dmabuf_issuer* issuer, dmabuf_issuer_module* m) {
  auto* in = new (std::nothrow) Instance;
  if (!in) return -ENOMEM;
  in->api = api;
  in->issuer = issuer;
  in->context = api->context_alloc(1);
  m->name = "cxx";
  m->fence_ops = &kOps;
  m->issuer_ops = &kIssuerOps;
  m->priv = in;
  return 0;
}

}  // namespace

DMABUF_ISSUER_MODULE(cxx_init)
