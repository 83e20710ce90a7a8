// Shared helpers for the issuer tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/base/rcu.h"
#include "core/fence/fence.h"
#include "core/issuer/issuer.h"

namespace issuer_test {

inline std::string module_path(const char* name) {
  return std::string(DMABUF_ISSUER_DIR) + "/issuer_" + name + ".so";
}
inline std::string test_module_path(const char* name) {
  return std::string(DMABUF_TEST_ISSUER_DIR) + "/test_issuer_" + name + ".so";
}

// One reference to an issuer, dropped at scope exit.
class IssuerRef {
 public:
  IssuerRef() = default;
  explicit IssuerRef(dmabuf::Issuer* p) : p_(p) {}
  IssuerRef(const IssuerRef&) = delete;
  IssuerRef& operator=(const IssuerRef&) = delete;
  ~IssuerRef() { reset(); }
  void reset(dmabuf::Issuer* p = nullptr) {
    if (p_) p_->put();
    p_ = p;
  }
  dmabuf::Issuer* get() const { return p_; }
  dmabuf::Issuer* operator->() const { return p_; }
  dmabuf::Issuer** out() {
    reset();
    return &p_;
  }

 private:
  dmabuf::Issuer* p_ = nullptr;
};

inline dmabuf::Issuer* load_or_die(const std::string& path,
                                   dmabuf::IssuerLoadOptions opts = {}) {
  dmabuf::Issuer* iss = nullptr;
  std::string err;
  const int rc = dmabuf::Issuer::load(path, opts, &iss, &err);
  EXPECT_EQ(rc, 0) << err;
  return iss;
}

inline dmabuf::Fence* make_fence(dmabuf::Issuer* iss, dmabuf::IssuerFenceArgs args = {}) {
  dmabuf::Fence* f = nullptr;
  std::string err;
  EXPECT_EQ(iss->create_fence(args, &f, &err), 0) << err;
  return f;
}

inline int64_t param(dmabuf::Issuer* iss, const char* name) {
  int64_t v = -1;
  std::string err;
  EXPECT_EQ(iss->get_param(name, &v, &err), 0) << err;
  return v;
}

inline void unload_ok(dmabuf::Issuer* iss) {
  std::string err;
  EXPECT_EQ(iss->unload(dmabuf::kMaxScheduleTimeout, &err), 0) << err;
}

inline std::string driver_name(dmabuf::Fence* f) {
  dmabuf::rcu::ReadGuard g;
  return dmabuf::fence_driver_name(f);
}
inline std::string timeline_name(dmabuf::Fence* f) {
  dmabuf::rcu::ReadGuard g;
  return dmabuf::fence_timeline_name(f);
}

}  // namespace issuer_test
