// Issuer modules: loading (dlopen + ABI check + init), fence creation, named
// parameters, and the unload protocol of Linux 7.1. Names-only issuers are in
// issuer_names.cc, the module-facing ABI in issuer_abi.cc.
#include "core/issuer/issuer.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "core/base/futex.h"
#include "core/base/monotonic.h"
#include "core/base/rcu.h"
#include "core/base/warn.h"
#include "core/issuer/issuer_record.h"

namespace dmabuf {

using issuer_detail::Record;

namespace {

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

int fail(std::string* error, int code, std::string message) {
  if (error) *error = std::move(message);
  return code;
}

// --- the record pool and the registry of loaded modules -----------------------------

struct Globals {
  std::mutex mu;
  Record* free_records = nullptr;
  std::vector<Record*> all_records;  // keeps every record reachable (never freed)
  std::vector<Issuer*> loaded;       // one reference each
  uint64_t next_gen = 2;             // even: live generations
};
Globals& globals() {
  static Globals* g = new Globals;  // immortal: fences may outlive static destruction
  return *g;
}

}  // namespace

namespace issuer_detail {

Record* record_acquire() {
  Globals& g = globals();
  std::lock_guard<std::mutex> l(g.mu);
  Record* r = g.free_records;
  if (r) {
    g.free_records = r->next_free;
  } else {
    r = new Record;
    g.all_records.push_back(r);
  }
  r->next_free = nullptr;
  r->accepting.store(false, std::memory_order_relaxed);
  // Release: a reader of an old load that sees these resets also sees that
  // load's kUnloaded state (stored before the record was recycled).
  r->pinned.store(0, std::memory_order_release);
  r->created.store(0, std::memory_order_release);
  r->c_ops.store(nullptr, std::memory_order_relaxed);
  r->core_ops = nullptr;
  r->pins = false;
  r->gen.store(g.next_gen, std::memory_order_release);
  g.next_gen += 2;
  return r;
}

void record_kill(Record* r) {
  r->accepting.store(false, std::memory_order_release);
  r->gen.fetch_or(1, std::memory_order_acq_rel);
}

void record_recycle(Record* r) {
  Globals& g = globals();
  std::lock_guard<std::mutex> l(g.mu);
  r->next_free = g.free_records;
  g.free_records = r;
}

void record_bury(Record* r) { r->accepting.store(false, std::memory_order_release); }

}  // namespace issuer_detail

// --- Issuer ------------------------------------------------------------------------

Issuer::Issuer(Kind kind) : kind_(kind) {}
Issuer::~Issuer() = default;

void Issuer::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

int Issuer::load(const std::string& path, const IssuerLoadOptions& opts, Issuer** out,
                 std::string* error) {
  if (!out) return fail(error, -EINVAL, "Issuer::load: no output handle");
  *out = nullptr;
  if (path.empty()) return fail(error, -EINVAL, "Issuer::load: empty path");
  if (path.find('\0') != std::string::npos)
    return fail(error, -EINVAL, "Issuer::load: path contains a NUL byte");
  // A bare file name would make dlopen search the library path; load files only.
  const std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  struct stat st;
  if (stat(file.c_str(), &st) != 0) {
    const int e = errno;
    return fail(error, -e, format("%s: %s", path.c_str(), strerror(e)));
  }
  if (S_ISDIR(st.st_mode)) return fail(error, -EISDIR, format("%s: is a directory", path.c_str()));

  dlerror();
  void* dl = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    const char* why = dlerror();
    return fail(error, -ENOEXEC,
                format("%s: cannot load: %s", path.c_str(), why ? why : "dlopen failed"));
  }
  auto close_with = [&](int code, std::string msg) {
    dlclose(dl);
    return fail(error, code, std::move(msg));
  };
  auto* abi = static_cast<const uint32_t*>(dlsym(dl, DMABUF_ISSUER_ABI_SYMBOL));
  auto* init = reinterpret_cast<dmabuf_issuer_init_fn*>(dlsym(dl, DMABUF_ISSUER_ENTRY_SYMBOL));
  if (!abi || !init)
    return close_with(-ENOSYS,
                      format("%s: not a dmabuf issuer module (no %s symbol; define it with "
                             "DMABUF_ISSUER_MODULE from <dmabuf/issuer.h>)",
                             path.c_str(), !abi ? DMABUF_ISSUER_ABI_SYMBOL : DMABUF_ISSUER_ENTRY_SYMBOL));
  const uint32_t major = *abi >> 16, minor = *abi & 0xffff;
  if (major != DMABUF_ISSUER_ABI_MAJOR || minor > DMABUF_ISSUER_ABI_MINOR)
    return close_with(-EPROTO, format("%s: built for issuer ABI %u.%u, this core provides %u.%u",
                                      path.c_str(), major, minor, DMABUF_ISSUER_ABI_MAJOR,
                                      DMABUF_ISSUER_ABI_MINOR));

  Record* rec = issuer_detail::record_acquire();
  dmabuf_issuer_module m;
  memset(&m, 0, sizeof m);
  m.size = sizeof m;
  // No fence can be allocated during init (the record is not accepting yet), so
  // a failed init needs no grace period before the record is reused.
  const int rc = init(&issuer_detail::kCoreApi, reinterpret_cast<dmabuf_issuer*>(rec), &m);
  if (rc != 0) {
    issuer_detail::record_kill(rec);
    issuer_detail::record_recycle(rec);
    const int code = rc < 0 ? rc : -EINVAL;
    return close_with(code, format("%s: dmabuf_issuer_init failed: %s", path.c_str(),
                                   rc < 0 ? strerror(-rc) : "returned a positive value"));
  }
  const char* missing = nullptr;
  if (!m.fence_ops) missing = "fence_ops";
  else if (!m.fence_ops->get_driver_name) missing = "fence_ops.get_driver_name";
  else if (!m.fence_ops->get_timeline_name) missing = "fence_ops.get_timeline_name";
  else if (!m.issuer_ops) missing = "issuer_ops";
  else if (!m.issuer_ops->create_fence) missing = "issuer_ops.create_fence";
  if (missing) {
    if (m.issuer_ops && m.issuer_ops->shutdown) m.issuer_ops->shutdown(m.priv);
    issuer_detail::record_kill(rec);
    issuer_detail::record_recycle(rec);
    return close_with(-EINVAL, format("%s: dmabuf_issuer_init left %s unset (mandatory)",
                                      path.c_str(), missing));
  }

  auto* iss = new Issuer(Kind::kModule);
  iss->path_ = path;
  const size_t slash = path.rfind('/');
  iss->name_ = m.name ? m.name : path.substr(slash == std::string::npos ? 0 : slash + 1);
  iss->dl_ = dl;
  iss->rec_ = rec;
  iss->ops_ = m.issuer_ops;
  iss->priv_ = m.priv;
  iss->keep_ops_ = opts.keep_ops || (m.flags & DMABUF_ISSUER_F_KEEP_OPS);
  for (const char* const* p = m.param_names; p && *p; ++p) iss->param_names_.emplace_back(*p);

  const unsigned mask = issuer_detail::ops_mask(m.fence_ops, iss->keep_ops_);
  rec->core_ops = issuer_detail::wrapper_ops(mask);
  rec->pins = issuer_detail::mask_pins(mask);
  rec->c_ops.store(m.fence_ops, std::memory_order_relaxed);
  rec->accepting.store(true, std::memory_order_release);

  Globals& g = globals();
  {
    std::lock_guard<std::mutex> l(g.mu);
    g.loaded.push_back(iss->get());  // the registry's reference
  }
  *out = iss;
  return 0;
}

int Issuer::create_fence(const IssuerFenceArgs& args, Fence** out, std::string* error) {
  if (!out) return fail(error, -EINVAL, "create_fence: no output fence");
  *out = nullptr;
  if (kind_ == Kind::kNames) return create_named_fence(args, out, error);

  std::shared_lock<std::shared_mutex> use(use_mu_);
  if (state() != State::kLive)
    return fail(error, -ENODEV, format("%s: issuer is %s", name_.c_str(),
                                       state() == State::kDraining ? "unloading" : "unloaded"));
  dmabuf_fence_args a{};
  a.size = sizeof a;
  if (args.context) {
    a.flags |= DMABUF_FENCE_ARG_CONTEXT;
    a.context = *args.context;
  }
  if (args.seqno) {
    a.flags |= DMABUF_FENCE_ARG_SEQNO;
    a.seqno = *args.seqno;
  }
  if (args.seqno64) a.flags |= DMABUF_FENCE_ARG_SEQNO64;
  dmabuf_fence* cf = nullptr;
  const int rc = ops_->create_fence(priv_, &a, &cf);
  if (rc != 0) {
    if (cf) warn("%s: create_fence failed but returned a fence", name_.c_str());
    const int code = rc < 0 ? rc : -EINVAL;
    return fail(error, code, format("%s: create_fence failed: %s", name_.c_str(),
                                    rc < 0 ? strerror(-rc) : "returned a positive value"));
  }
  Fence* f = issuer_detail::to_fence(cf);
  if (!f || !fence_was_initialized(f))
    return fail(error, -EINVAL, format("%s: create_fence returned %s", name_.c_str(),
                                       f ? "an uninitialised fence" : "no fence"));
  if (issuer_detail::trailer(f)->rec != rec_) {
    // Someone else's fence (e.g. mixed-up instances of a module loaded twice).
    fence_put(f);
    return fail(error, -EINVAL,
                format("%s: create_fence returned a fence of another issuer", name_.c_str()));
  }
  *out = f;
  return 0;
}

int Issuer::check_param_call(const std::string& name, std::string* error) const {
  if (kind_ == Kind::kNames)
    return fail(error, -ENOENT, format("%s: names-only issuers have no parameters", name_.c_str()));
  // The module sees name.c_str(): "latency_us\0x" must not reach it as "latency_us".
  if (name.find('\0') != std::string::npos)
    return fail(error, -EINVAL, format("%s: parameter name contains a NUL byte", name_.c_str()));
  if (state() != State::kLive) return fail(error, -ENODEV, format("%s: issuer is unloaded", name_.c_str()));
  return 0;
}

int Issuer::set_param(const std::string& name, int64_t value, std::string* error) {
  std::shared_lock<std::shared_mutex> use(use_mu_);
  if (int rc = check_param_call(name, error)) return rc;
  const int rc = ops_->set_param ? ops_->set_param(priv_, name.c_str(), value) : -ENOENT;
  if (rc == -ENOENT)
    return fail(error, rc, format("%s: no parameter named '%s'", name_.c_str(), name.c_str()));
  if (rc != 0)
    return fail(error, rc < 0 ? rc : -EINVAL,
                format("%s: set_param('%s', %lld): %s", name_.c_str(), name.c_str(),
                       static_cast<long long>(value), rc < 0 ? strerror(-rc) : "failed"));
  return 0;
}

int Issuer::get_param(const std::string& name, int64_t* value, std::string* error) {
  if (!value) return fail(error, -EINVAL, "get_param: no output value");
  std::shared_lock<std::shared_mutex> use(use_mu_);
  if (int rc = check_param_call(name, error)) return rc;
  const int rc = ops_->get_param ? ops_->get_param(priv_, name.c_str(), value) : -ENOENT;
  if (rc == -ENOENT)
    return fail(error, rc, format("%s: no parameter named '%s'", name_.c_str(), name.c_str()));
  if (rc != 0)
    return fail(error, rc < 0 ? rc : -EINVAL,
                format("%s: get_param('%s'): %s", name_.c_str(), name.c_str(),
                       rc < 0 ? strerror(-rc) : "failed"));
  return 0;
}

int Issuer::unload(int64_t timeout_ns, std::string* error) {
  if (timeout_ns < 0) return fail(error, -EINVAL, "unload: negative timeout");
  if (rcu::read_ongoing())
    return fail(error, -EDEADLK, "unload: called inside an RCU read section (it waits for a grace period)");
  get();  // `this` must outlive dropping the registry's reference below
  int rc = 0;
  {
    std::lock_guard<std::mutex> one(unload_mu_);
    if (state() == State::kUnloaded) {
      rc = 0;
    } else if (kind_ == Kind::kNames) {
      std::unique_lock<std::shared_mutex> use(use_mu_);
      state_.store(State::kUnloaded, std::memory_order_release);
    } else {
      rc = unload_module(timeout_ns, error);
    }
  }
  put();
  return rc;
}

int Issuer::unload_module(int64_t timeout_ns, std::string* error) {
  IssuerUnloadStats st;
  const int64_t t0 = monotonic_ns();
  if (state() == State::kLive) {
    // Wait out create_fence/param calls in flight; none start after this.
    std::unique_lock<std::shared_mutex> use(use_mu_);
    state_.store(State::kDraining, std::memory_order_release);
  }
  // 1. The module signals everything it still owns.
  if (!signalled_all_) {
    signalled_all_ = true;
    rec_->accepting.store(false, std::memory_order_release);  // fence_alloc fails now
    if (ops_->signal_all) ops_->signal_all(priv_);
  }
  const int64_t t1 = monotonic_ns();
  st.signal_all_ns = t1 - t0;

  // 2. Fences with release/wait ops never detach: each one pins the module.
  if (!keep_ops_) {
    const int64_t deadline =
        timeout_ns >= kMaxScheduleTimeout - t1 ? kMaxScheduleTimeout : t1 + timeout_ns;
    for (;;) {
      const uint32_t n = rec_->pinned.load(std::memory_order_acquire);
      if (n == 0) break;
      const int64_t now = monotonic_ns();
      if (now >= deadline) {
        return fail(error, -EBUSY,
                    format("%s: cannot unload: %u fence%s with release/wait ops still alive "
                           "after %lld ms (they pin the module); drop them and call unload() "
                           "again",
                           name_.c_str(), n, n == 1 ? "" : "s",
                           static_cast<long long>(timeout_ns / 1000000)));
      }
      futex_wait(&rec_->pinned, n, deadline == kMaxScheduleTimeout ? -1 : deadline - now);
    }
  }
  const int64_t t2 = monotonic_ns();
  st.drain_ns = t2 - t1;

  // 3. From here on a fence the module forgot to signal behaves as "unloaded"
  //    (pre-7.1 mode keeps calling into the module, which is the point of it).
  if (!keep_ops_) issuer_detail::record_kill(rec_);
  // 4. One grace period: every ops call that saw an attached fence has returned
  //    and no longer uses a name string of the module.
  rcu::synchronize();
  const int64_t t3 = monotonic_ns();
  st.grace_ns = t3 - t2;

  // 5. The module frees its state and joins its threads; then it goes away.
  if (ops_->shutdown) ops_->shutdown(priv_);
  const int64_t t4 = monotonic_ns();
  st.shutdown_ns = t4 - t3;
  dlclose(dl_);
  dl_ = nullptr;
  const int64_t t5 = monotonic_ns();
  st.close_ns = t5 - t4;
  st.total_ns = t5 - t0;

  created_at_unload_ = rec_->created.load(std::memory_order_relaxed);
  ops_ = nullptr;
  priv_ = nullptr;
  {
    std::lock_guard<std::mutex> l(stats_mu_);
    stats_ = st;
  }
  // Unloaded before the record can be reused by another load (which resets its
  // counters): pinned_fences()/fences_created() re-check the state after reading one.
  state_.store(State::kUnloaded, std::memory_order_release);
  if (keep_ops_)
    issuer_detail::record_bury(rec_);
  else
    issuer_detail::record_recycle(rec_);
  // Drop the registry's reference (last: `this` may go away with it).
  Issuer* registry_ref = nullptr;
  {
    Globals& g = globals();
    std::lock_guard<std::mutex> l(g.mu);
    auto it = std::find(g.loaded.begin(), g.loaded.end(), this);
    if (it != g.loaded.end()) {
      registry_ref = *it;
      g.loaded.erase(it);
    }
  }
  // unload() holds its own reference, so this never frees `this` under us.
  if (registry_ref) registry_ref->put();
  return 0;
}

// Both read the record of this load, which another load may reuse once this
// one is unloaded. Unload stores kUnloaded before recycling the record and
// record_acquire resets the counters with release stores, so a count read
// (acquire) while the state still reads live/draining is this load's.
uint32_t Issuer::pinned_fences() const {
  if (kind_ != Kind::kModule || state() == State::kUnloaded) return 0;
  const uint32_t n = rec_->pinned.load(std::memory_order_acquire);
  return state() == State::kUnloaded ? 0 : n;
}

uint64_t Issuer::fences_created() const {
  if (kind_ == Kind::kNames) return named_created_.load(std::memory_order_relaxed);
  if (state() != State::kUnloaded) {
    const uint64_t n = rec_->created.load(std::memory_order_acquire);
    if (state() != State::kUnloaded) return n;
  }
  return created_at_unload_;
}

IssuerUnloadStats Issuer::last_unload_stats() const {
  std::lock_guard<std::mutex> l(stats_mu_);
  return stats_;
}

size_t Issuer::loaded_modules() {
  Globals& g = globals();
  std::lock_guard<std::mutex> l(g.mu);
  return g.loaded.size();
}

int Issuer::unload_all(int64_t timeout_ns, std::string* error) {
  std::vector<Issuer*> all;
  {
    Globals& g = globals();
    std::lock_guard<std::mutex> l(g.mu);
    for (Issuer* i : g.loaded) all.push_back(i->get());
  }
  int first = 0;
  for (Issuer* i : all) {
    std::string msg;
    const int rc = i->unload(timeout_ns, &msg);
    if (rc != 0 && first == 0) first = fail(error, rc, msg);
    i->put();
  }
  return first;
}

}  // namespace dmabuf
