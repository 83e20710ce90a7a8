// Fence issuers: loadable modules (the userspace stand-in for a kernel driver
// module) and names-only issuers for JS code. The unload protocol follows Linux
// 7.1: the module signals what it still owns, fences that pin it (release/wait
// ops) are waited for, one RCU grace period passes, then the module is closed.
// Fences that were signalled keep working after that: their ops were detached.
// The module ABI is native/include/dmabuf/issuer.h; see docs/issuers.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/fence/fence.h"

struct dmabuf_issuer_ops;

namespace dmabuf {

namespace issuer_detail {
struct Record;
}

struct IssuerLoadOptions {
  // Pre-7.1 behaviour, to reproduce the historical crash: the module's fences
  // never detach and unload does not wait for them. Never use it otherwise.
  bool keep_ops = false;
};

// What a caller asks of create_fence. Module issuers treat these as hints.
struct IssuerFenceArgs {
  std::optional<uint64_t> context;  // default: the issuer's timeline context
  std::optional<uint64_t> seqno;    // default: the timeline's next seqno
  bool seqno64 = false;             // fence_init64 ordering
};

// Durations of the phases of the last unload, in ns (0 for skipped phases).
struct IssuerUnloadStats {
  int64_t signal_all_ns = 0;  // the module's signal_all
  int64_t drain_ns = 0;       // waiting for fences that pin the module
  int64_t grace_ns = 0;       // rcu::synchronize()
  int64_t shutdown_ns = 0;    // the module's shutdown
  int64_t close_ns = 0;       // dlclose
  int64_t total_ns = 0;
};

// A fence issuer. Reference counted (get/put) so that JS objects and exported
// handles can share one; a loaded module is additionally held by the module
// registry until it is unloaded, so dropping every handle never unloads it.
//
// Errors: every fallible call returns 0 or a negative errno and, on failure,
// sets *error to a message for the user (the addon builds DmaBufError from both).
class Issuer {
 public:
  enum class Kind { kModule, kNames };
  enum class State { kLive, kDraining, kUnloaded };

  // dlopen(path, RTLD_NOW | RTLD_LOCAL) and the module's dmabuf_issuer_init.
  // A path without '/' is taken relative to the working directory, not searched.
  //   -ENOENT/-EACCES/...  the file cannot be stat'ed
  //   -EISDIR              it is a directory
  //   -ENOEXEC             dlopen failed (not a shared object, missing
  //                        dependency...): the message carries dlerror()
  //   -ENOSYS              no dmabuf_issuer_abi / dmabuf_issuer_init symbol
  //   -EPROTO              built for an incompatible ABI version
  //   -EINVAL              the module described itself incompletely
  //   other negative       dmabuf_issuer_init's own error
  // On success *out holds one reference.
  static int load(const std::string& path, const IssuerLoadOptions& opts, Issuer** out,
                  std::string* error);

  // A names-only issuer (no module): fences report these names until they are
  // signalled, then "detached-driver"/"signaled-timeline". Each fence carries
  // its own copy of the names, so they live exactly as long as the fence memory
  // (which is freed a grace period after the last put).
  //   -EINVAL        missing (null data), empty, or containing NUL
  //   -ENAMETOOLONG  longer than kMaxNameLength bytes
  static int create_named(std::string_view driver_name, std::string_view timeline_name,
                          Issuer** out, std::string* error);
  static constexpr size_t kMaxNameLength = 255;

  Issuer* get() {
    refs_.fetch_add(1, std::memory_order_relaxed);
    return this;
  }
  void put();

  // A new fence of this issuer; *out holds the caller's reference.
  // -ENODEV once unload has started; otherwise the module's error.
  int create_fence(const IssuerFenceArgs& args, Fence** out, std::string* error);

  // The module's named integer parameters (-ENOENT: no such parameter; -EINVAL:
  // the name contains a NUL byte).
  int set_param(const std::string& name, int64_t value, std::string* error);
  int get_param(const std::string& name, int64_t* value, std::string* error);
  const std::vector<std::string>& param_names() const { return param_names_; }

  // The unload protocol. Blocks: call it off the JS thread, never inside an RCU
  // read section (-EDEADLK) or from a fence callback. Order: refuse new fences,
  // the module's signal_all, wait up to timeout_ns (kMaxScheduleTimeout: for
  // ever) for fences that pin the module, one grace period, the module's
  // shutdown, dlclose.
  //   -EBUSY  pinned fences still alive at the timeout; the issuer stays
  //           loaded but refuses new fences, and unload() may be called again.
  // Unloading an unloaded issuer, or a names issuer, returns 0.
  int unload(int64_t timeout_ns, std::string* error);

  Kind kind() const { return kind_; }
  State state() const { return state_.load(std::memory_order_acquire); }
  bool keep_ops() const { return keep_ops_; }
  const std::string& path() const { return path_; }
  // The module's name (or the file name), or a names issuer's driver name.
  const std::string& name() const { return name_; }
  const std::string& timeline_name() const { return timeline_; }  // names issuers
  uint64_t context() const { return context_; }                   // names issuers
  // Live fences whose ops have release or wait (they pin a module issuer).
  uint32_t pinned_fences() const;
  // Fences initialised through this issuer since it was loaded.
  uint64_t fences_created() const;
  IssuerUnloadStats last_unload_stats() const;

  // Module issuers loaded and not yet unloaded.
  static size_t loaded_modules();
  // Unloads every loaded module (process teardown); the first error wins.
  static int unload_all(int64_t timeout_ns, std::string* error);

  Issuer(const Issuer&) = delete;
  Issuer& operator=(const Issuer&) = delete;

 private:
  // The checks shared by set_param/get_param; the caller holds use_mu_ shared.
  int check_param_call(const std::string& name, std::string* error) const;

  explicit Issuer(Kind kind);
  ~Issuer();
  int create_named_fence(const IssuerFenceArgs& args, Fence** out, std::string* error);
  int unload_module(int64_t timeout_ns, std::string* error);

  std::atomic<uint32_t> refs_{1};
  const Kind kind_;
  std::atomic<State> state_{State::kLive};
  std::shared_mutex use_mu_;  // shared: calls into the module; exclusive: leaving kLive
  std::mutex unload_mu_;      // one unload at a time
  bool signalled_all_ = false;
  std::string path_;
  std::string name_;
  std::string timeline_;
  uint64_t context_ = 0;
  std::atomic<uint64_t> next_seqno_{0};
  std::atomic<uint64_t> named_created_{0};
  // Module issuers.
  void* dl_ = nullptr;
  issuer_detail::Record* rec_ = nullptr;
  const dmabuf_issuer_ops* ops_ = nullptr;
  void* priv_ = nullptr;
  bool keep_ops_ = false;
  uint64_t created_at_unload_ = 0;
  std::vector<std::string> param_names_;
  mutable std::mutex stats_mu_;
  IssuerUnloadStats stats_;
};

}  // namespace dmabuf
