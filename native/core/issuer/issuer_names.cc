// Names-only issuers, for JS code: no module, just a driver and a timeline name.
//
// The names must stay readable for at least one grace period after every fence
// signalled. A refcount on a shared name block would need a hook when each fence
// detaches or is freed, and the 7.1 core has none for fences without a release
// op (and a release op would stop them from detaching). So each fence carries its
// own copy of the names behind the fence struct: the copy lives exactly as long
// as the fence memory, which the core frees a grace period after the last put.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/issuer/issuer.h"

namespace dmabuf {
namespace {

// [Fence][timeline pointer][driver name\0][timeline name\0]
struct NamedFence {
  Fence fence;
  const char* timeline;
  char driver[];
};

const char* named_driver(Fence* f) { return reinterpret_cast<NamedFence*>(f)->driver; }
const char* named_timeline(Fence* f) { return reinterpret_cast<NamedFence*>(f)->timeline; }

// Names only: detached at signal time, like the kernel selftests' mock fences.
const FenceOps kNamedOps = {.get_driver_name = named_driver, .get_timeline_name = named_timeline};

int check_name(std::string_view name, const char* what, std::string* error) {
  auto fail = [&](int code, const char* why) {
    if (error) *error = std::string("Issuer: ") + what + " " + why;
    return code;
  };
  if (!name.data()) return fail(-EINVAL, "is missing");
  if (name.empty()) return fail(-EINVAL, "is empty");
  if (name.find('\0') != std::string_view::npos) return fail(-EINVAL, "contains a NUL byte");
  if (name.size() > Issuer::kMaxNameLength) return fail(-ENAMETOOLONG, "is longer than 255 bytes");
  return 0;
}

}  // namespace

int Issuer::create_named(std::string_view driver_name, std::string_view timeline_name,
                         Issuer** out, std::string* error) {
  if (!out) {
    if (error) *error = "Issuer::create_named: no output handle";
    return -EINVAL;
  }
  *out = nullptr;
  if (int rc = check_name(driver_name, "driverName", error)) return rc;
  if (int rc = check_name(timeline_name, "timelineName", error)) return rc;
  auto* iss = new Issuer(Kind::kNames);
  iss->name_.assign(driver_name);
  iss->timeline_.assign(timeline_name);
  iss->context_ = fence_context_alloc(1);
  *out = iss;
  return 0;
}

int Issuer::create_named_fence(const IssuerFenceArgs& args, Fence** out, std::string* error) {
  if (state() != State::kLive) {
    if (error) *error = name_ + ": issuer is unloaded";
    return -ENODEV;
  }
  const size_t dlen = name_.size() + 1, tlen = timeline_.size() + 1;
  const size_t size = sizeof(NamedFence) + dlen + tlen;
  // Short names fit a recycled fence-cache block; longer ones take a malloc'd
  // block, which fence_free() recycles as an ordinary fence.
  const bool large_block = size <= kFenceLargeBlock;
  auto* nf = reinterpret_cast<NamedFence*>(large_block ? fence_alloc_large()
                                                       : static_cast<Fence*>(std::calloc(1, size)));
  if (!nf) {
    if (error) *error = name_ + ": out of memory";
    return -ENOMEM;
  }
  memcpy(nf->driver, name_.c_str(), dlen);
  memcpy(nf->driver + dlen, timeline_.c_str(), tlen);
  nf->timeline = nf->driver + dlen;
  const uint64_t seqno =
      args.seqno ? *args.seqno : next_seqno_.fetch_add(1, std::memory_order_relaxed) + 1;
  const uint64_t context = args.context ? *args.context : context_;
  if (args.seqno64)
    fence_init64(&nf->fence, &kNamedOps, nullptr, context, seqno);
  else
    fence_init(&nf->fence, &kNamedOps, nullptr, context, seqno);
  if (large_block) fence_mark_large_block(&nf->fence);
  named_created_.fetch_add(1, std::memory_order_relaxed);
  *out = &nf->fence;
  return 0;
}

}  // namespace dmabuf
