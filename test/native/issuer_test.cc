// Issuers: loading, bad inputs, names-only issuers, parameters and the four
// example modules. Unload races and lifetimes are in issuer_unload_test.cc, the
// pre-7.1 crash in issuer_crash_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/base/monotonic.h"
#include "issuer_test_util.h"

using namespace dmabuf;
using namespace issuer_test;

namespace {

struct LoadError {
  int code;
  std::string message;
};

LoadError load_error(const std::string& path, IssuerLoadOptions opts = {}) {
  Issuer* iss = nullptr;
  std::string err;
  const int rc = Issuer::load(path, opts, &iss, &err);
  EXPECT_EQ(iss, nullptr);
  if (iss) iss->put();
  return {rc, err};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

// --- loading and bad inputs ----------------------------------------------------------

TEST(IssuerLoad, NamesModuleFencesDetachAtSignal) {
  const size_t before = Issuer::loaded_modules();
  IssuerRef iss(load_or_die(module_path("names")));
  ASSERT_TRUE(iss.get());
  EXPECT_EQ(iss->kind(), Issuer::Kind::kModule);
  EXPECT_EQ(iss->state(), Issuer::State::kLive);
  EXPECT_EQ(iss->name(), "example-names");
  EXPECT_FALSE(iss->keep_ops());
  EXPECT_EQ(Issuer::loaded_modules(), before + 1);

  Fence* f = make_fence(iss.get());
  ASSERT_TRUE(f);
  const int64_t ctx = param(iss.get(), "context");
  EXPECT_EQ(f->context, static_cast<uint64_t>(ctx));
  EXPECT_EQ(f->seqno, 1u);
  EXPECT_EQ(driver_name(f), "example-names");
  EXPECT_EQ(timeline_name(f), "names-" + std::to_string(ctx));
  EXPECT_NE(f->ops, nullptr);
  EXPECT_EQ(iss->pinned_fences(), 0u);
  EXPECT_EQ(iss->fences_created(), 1u);

  fence_signal(f);
  EXPECT_EQ(f->ops, nullptr) << "names-only ops must detach at signal time";
  EXPECT_EQ(driver_name(f), "detached-driver");
  EXPECT_EQ(timeline_name(f), "signaled-timeline");

  unload_ok(iss.get());
  EXPECT_EQ(iss->state(), Issuer::State::kUnloaded);
  EXPECT_EQ(Issuer::loaded_modules(), before);
  EXPECT_EQ(fence_get_status(f), 1);
  fence_put(f);
}

TEST(IssuerLoad, HintsReachTheModule) {
  IssuerRef iss(load_or_die(module_path("names")));
  IssuerFenceArgs a;
  a.context = 77;
  a.seqno = 0xfffffffffull;
  a.seqno64 = true;
  Fence* f = make_fence(iss.get(), a);
  EXPECT_EQ(f->context, 77u);
  EXPECT_EQ(f->seqno, 0xfffffffffull);
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_SEQNO64_BIT));
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_INLINE_LOCK_BIT));
  fence_signal(f);
  fence_put(f);
  unload_ok(iss.get());
}

TEST(IssuerLoad, MissingFile) {
  auto e = load_error("/nonexistent/dir/issuer_nope.so");
  EXPECT_EQ(e.code, -ENOENT);
  EXPECT_TRUE(contains(e.message, "/nonexistent/dir/issuer_nope.so")) << e.message;
  EXPECT_TRUE(contains(e.message, "No such file")) << e.message;
  // A bare name is a file in the working directory, never a library-path search.
  EXPECT_EQ(load_error("libc.so.6").code, -ENOENT);
}

TEST(IssuerLoad, EmptyPathAndDirectory) {
  EXPECT_EQ(load_error("").code, -EINVAL);
  EXPECT_EQ(load_error(std::string("a\0b", 3)).code, -EINVAL);
  auto e = load_error(DMABUF_ISSUER_DIR);
  EXPECT_EQ(e.code, -EISDIR) << e.message;
  std::string err;
  EXPECT_EQ(Issuer::load(module_path("names"), {}, nullptr, &err), -EINVAL);
}

TEST(IssuerLoad, NotASharedObject) {
  char path[] = "/tmp/dmabuf-issuer-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const char text[] = "this is not an ELF shared object\n";
  ASSERT_EQ(write(fd, text, sizeof text - 1), static_cast<ssize_t>(sizeof text - 1));
  close(fd);
  auto e = load_error(path);
  unlink(path);
  EXPECT_EQ(e.code, -ENOEXEC);
  EXPECT_TRUE(contains(e.message, "cannot load")) << e.message;
  EXPECT_TRUE(contains(e.message, path)) << "dlerror text names the file: " << e.message;
}

TEST(IssuerLoad, MissingEntrySymbol) {
  auto e = load_error(test_module_path("noentry"));
  EXPECT_EQ(e.code, -ENOSYS);
  EXPECT_TRUE(contains(e.message, "not a dmabuf issuer module")) << e.message;
  EXPECT_TRUE(contains(e.message, "dmabuf_issuer_abi")) << e.message;
  e = load_error(test_module_path("noinit"));
  EXPECT_EQ(e.code, -ENOSYS);
  EXPECT_TRUE(contains(e.message, "dmabuf_issuer_init")) << e.message;
}

TEST(IssuerLoad, AbiMismatch) {
  auto e = load_error(test_module_path("badabi"));
  EXPECT_EQ(e.code, -EPROTO);
  EXPECT_TRUE(contains(e.message, "ABI 99.0")) << e.message;
  EXPECT_TRUE(contains(e.message, "provides 1.0")) << e.message;
  e = load_error(test_module_path("newminor"));
  EXPECT_EQ(e.code, -EPROTO) << e.message;
  EXPECT_TRUE(contains(e.message, "ABI 1.1")) << e.message;
}

TEST(IssuerLoad, InitErrorIsPassedOn) {
  auto e = load_error(test_module_path("initfail"));
  EXPECT_EQ(e.code, -ENXIO);
  EXPECT_TRUE(contains(e.message, "dmabuf_issuer_init failed")) << e.message;
}

TEST(IssuerLoad, IncompleteOpsAreRefused) {
  // The module's shutdown still runs (LeakSanitizer checks its allocation).
  auto e = load_error(test_module_path("badops"));
  EXPECT_EQ(e.code, -EINVAL);
  EXPECT_TRUE(contains(e.message, "get_timeline_name")) << e.message;
}

TEST(IssuerLoad, FailedLoadsLeaveNothingLoaded) {
  const size_t before = Issuer::loaded_modules();
  for (const char* m : {"noentry", "noinit", "badabi", "newminor", "initfail", "badops"})
    load_error(test_module_path(m));
  EXPECT_EQ(Issuer::loaded_modules(), before);
}

TEST(IssuerLoad, SameModuleTwiceIsTwoInstances) {
  IssuerRef a(load_or_die(module_path("names")));
  IssuerRef b(load_or_die(module_path("names")));
  EXPECT_NE(param(a.get(), "context"), param(b.get(), "context"));
  Fence* fa = make_fence(a.get());
  Fence* fb = make_fence(b.get());
  EXPECT_NE(timeline_name(fa), timeline_name(fb));
  unload_ok(a.get());  // b keeps the module mapped
  EXPECT_EQ(driver_name(fb), "example-names");
  EXPECT_EQ(fence_get_status(fa), -ECANCELED) << "signal_all cancels what it still owns";
  fence_signal(fb);
  unload_ok(b.get());
  fence_put(fa);
  fence_put(fb);
}

TEST(IssuerLoad, ModuleWrittenInCxx) {
  IssuerRef iss(load_or_die(test_module_path("cxx")));
  EXPECT_EQ(iss->name(), "cxx");
  Fence* f = make_fence(iss.get());
  EXPECT_EQ(driver_name(f), "cxx-driver");
  EXPECT_EQ(timeline_name(f), "cxx-timeline");
  unload_ok(iss.get());
  EXPECT_EQ(fence_get_status(f), -ECANCELED);
  EXPECT_EQ(f->ops, nullptr);
  fence_put(f);
}

TEST(IssuerLoad, UnloadedIssuerRefusesWork) {
  IssuerRef iss(load_or_die(module_path("ring")));
  unload_ok(iss.get());
  unload_ok(iss.get());  // idempotent
  Fence* f = nullptr;
  std::string err;
  EXPECT_EQ(iss->create_fence({}, &f, &err), -ENODEV);
  EXPECT_EQ(f, nullptr);
  EXPECT_TRUE(contains(err, "unloaded")) << err;
  int64_t v;
  EXPECT_EQ(iss->get_param("latency_us", &v, &err), -ENODEV);
  EXPECT_EQ(iss->set_param("latency_us", 1, &err), -ENODEV);
  EXPECT_EQ(iss->pinned_fences(), 0u);
}

TEST(IssuerLoad, UnloadInsideReadSectionIsRefused) {
  IssuerRef iss(load_or_die(module_path("names")));
  std::string err;
  {
    rcu::ReadGuard g;
    EXPECT_EQ(iss->unload(kMaxScheduleTimeout, &err), -EDEADLK);
  }
  EXPECT_TRUE(contains(err, "RCU read section")) << err;
  EXPECT_EQ(iss->state(), Issuer::State::kLive);
  EXPECT_EQ(iss->unload(-1, &err), -EINVAL);
  unload_ok(iss.get());
}

// --- names-only issuers (no module) ---------------------------------------------------

TEST(IssuerNames, FencesCarryTheNamesUntilSignalled) {
  Issuer* raw = nullptr;
  std::string err;
  ASSERT_EQ(Issuer::create_named("gpu", "ring0", &raw, &err), 0) << err;
  IssuerRef iss(raw);
  EXPECT_EQ(iss->kind(), Issuer::Kind::kNames);
  EXPECT_EQ(iss->name(), "gpu");
  EXPECT_EQ(iss->timeline_name(), "ring0");
  EXPECT_NE(iss->context(), 0u);

  Fence* a = make_fence(iss.get());
  Fence* b = make_fence(iss.get());
  EXPECT_EQ(a->context, iss->context());
  EXPECT_EQ(a->seqno, 1u);
  EXPECT_EQ(b->seqno, 2u);
  EXPECT_TRUE(fence_is_later(b, a));
  EXPECT_EQ(driver_name(a), "gpu");
  EXPECT_EQ(timeline_name(a), "ring0");
  EXPECT_EQ(fence_describe(a), std::to_string(iss->context()) + ":1 ring0 gpu unsignalled\n");

  fence_signal(a);
  EXPECT_EQ(a->ops, nullptr);
  EXPECT_EQ(driver_name(a), "detached-driver");
  EXPECT_EQ(timeline_name(a), "signaled-timeline");

  // The names outlive the issuer: each fence has its own copy.
  iss.reset();
  EXPECT_EQ(driver_name(b), "gpu");
  EXPECT_EQ(timeline_name(b), "ring0");
  fence_put(a);
  fence_put(b);
}

TEST(IssuerNames, ArgsAndUnload) {
  Issuer* raw = nullptr;
  std::string err;
  ASSERT_EQ(Issuer::create_named("d", "t", &raw, &err), 0);
  IssuerRef iss(raw);
  IssuerFenceArgs args;
  args.context = 5;
  args.seqno = 100;
  args.seqno64 = true;
  Fence* f = make_fence(iss.get(), args);
  EXPECT_EQ(f->context, 5u);
  EXPECT_EQ(f->seqno, 100u);
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_SEQNO64_BIT));
  EXPECT_EQ(iss->fences_created(), 1u);
  int64_t v;
  EXPECT_EQ(iss->get_param("x", &v, &err), -ENOENT);

  unload_ok(iss.get());
  EXPECT_EQ(iss->state(), Issuer::State::kUnloaded);
  Fence* g = nullptr;
  EXPECT_EQ(iss->create_fence({}, &g, &err), -ENODEV);
  EXPECT_EQ(driver_name(f), "d") << "unloading a names issuer leaves its fences alone";
  fence_signal(f);
  fence_put(f);
}

TEST(IssuerNames, InvalidNames) {
  Issuer* iss = nullptr;
  std::string err;
  EXPECT_EQ(Issuer::create_named(std::string_view(), "t", &iss, &err), -EINVAL);
  EXPECT_TRUE(contains(err, "driverName is missing")) << err;
  EXPECT_EQ(Issuer::create_named("d", std::string_view(), &iss, &err), -EINVAL);
  EXPECT_TRUE(contains(err, "timelineName is missing")) << err;
  EXPECT_EQ(Issuer::create_named("", "t", &iss, &err), -EINVAL);
  EXPECT_TRUE(contains(err, "empty")) << err;
  EXPECT_EQ(Issuer::create_named("d", std::string_view("a\0b", 3), &iss, &err), -EINVAL);
  EXPECT_TRUE(contains(err, "NUL")) << err;
  EXPECT_EQ(Issuer::create_named(std::string(256, 'x'), "t", &iss, &err), -ENAMETOOLONG);
  EXPECT_EQ(iss, nullptr);
  EXPECT_EQ(Issuer::create_named("d", "t", nullptr, &err), -EINVAL);
  ASSERT_EQ(Issuer::create_named(std::string(255, 'x'), std::string(255, 'y'), &iss, &err), 0);
  Fence* f = make_fence(iss);
  EXPECT_EQ(driver_name(f), std::string(255, 'x'));
  EXPECT_EQ(timeline_name(f), std::string(255, 'y'));
  fence_put(f);  // dropped unsignalled: no warning, no leak
  iss->put();
}

// --- parameters -------------------------------------------------------------------------

TEST(IssuerParams, RingLatency) {
  IssuerRef iss(load_or_die(module_path("ring")));
  const auto& names = iss->param_names();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], "latency_us");
  std::string err;
  EXPECT_EQ(param(iss.get(), "latency_us"), 100);
  EXPECT_EQ(iss->set_param("latency_us", 250, &err), 0) << err;
  EXPECT_EQ(param(iss.get(), "latency_us"), 250);
  EXPECT_EQ(iss->set_param("latency_us", -1, &err), -EINVAL);
  EXPECT_TRUE(contains(err, "latency_us")) << err;
  EXPECT_EQ(iss->set_param("nope", 1, &err), -ENOENT);
  EXPECT_TRUE(contains(err, "no parameter named 'nope'")) << err;
  int64_t v = 0;
  EXPECT_EQ(iss->get_param("nope", &v, &err), -ENOENT);
  EXPECT_EQ(iss->get_param("queued", nullptr, &err), -EINVAL);
  // An embedded NUL must not reach the module as the name before it.
  const std::string with_nul("latency_us\0x", 12);
  EXPECT_EQ(iss->set_param(with_nul, 5, &err), -EINVAL);
  EXPECT_TRUE(contains(err, "NUL")) << err;
  EXPECT_EQ(iss->get_param(with_nul, &v, &err), -EINVAL);
  EXPECT_EQ(param(iss.get(), "latency_us"), 250);
  unload_ok(iss.get());
}

TEST(IssuerParams, ModuleWithoutSetter) {
  IssuerRef iss(load_or_die(module_path("names")));
  std::string err;
  EXPECT_EQ(iss->set_param("owned", 1, &err), -ENOENT);
  unload_ok(iss.get());
}

// --- example modules --------------------------------------------------------------------

TEST(IssuerRing, SignalsInOrderAfterTheLatency) {
  IssuerRef iss(load_or_die(module_path("ring")));
  std::string err;
  ASSERT_EQ(iss->set_param("latency_us", 2000, &err), 0);
  const int64_t t0 = monotonic_ns();
  std::vector<Fence*> fs;
  for (int i = 0; i < 16; ++i) fs.push_back(make_fence(iss.get()));
  EXPECT_FALSE(fence_test_signaled_flag(fs[0]));
  EXPECT_GT(fence_wait_timeout(fs.back(), false, 5'000'000'000LL), 0);
  for (size_t i = 0; i < fs.size(); ++i) {
    ASSERT_TRUE(fence_test_signaled_flag(fs[i]));
    EXPECT_EQ(fence_get_status(fs[i]), 1);
    EXPECT_EQ(fs[i]->seqno, i + 1);
    EXPECT_GE(fence_timestamp(fs[i]), t0 + 2'000'000) << "signalled before its latency";
    if (i) {
      EXPECT_GE(fence_timestamp(fs[i]), fence_timestamp(fs[i - 1]));
    }
    EXPECT_EQ(fs[i]->ops, nullptr);
  }
  EXPECT_EQ(param(iss.get(), "signalled"), 16);
  unload_ok(iss.get());
  for (Fence* f : fs) fence_put(f);
}

TEST(IssuerRing, UnloadCancelsQueuedJobs) {
  IssuerRef iss(load_or_die(module_path("ring")));
  std::string err;
  ASSERT_EQ(iss->set_param("latency_us", 10'000'000, &err), 0);  // 10 s: never reached
  std::vector<Fence*> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(make_fence(iss.get()));
  EXPECT_EQ(param(iss.get(), "queued"), 8);
  unload_ok(iss.get());
  for (Fence* f : fs) {
    EXPECT_EQ(fence_get_status(f), -ECANCELED);
    EXPECT_EQ(driver_name(f), "detached-driver");
    fence_put(f);
  }
  const IssuerUnloadStats st = iss->last_unload_stats();
  EXPECT_GT(st.total_ns, 0);
  EXPECT_GE(st.total_ns, st.grace_ns);
}

namespace {
struct CbFlag {
  FenceCallback cb;
  std::atomic<int> ran{0};
};
void set_flag(Fence*, FenceCallback* cb) { container_of(cb, &CbFlag::cb)->ran.fetch_add(1); }
}  // namespace

TEST(IssuerPolled, EnableSignalingAndPolling) {
  IssuerRef iss(load_or_die(module_path("polled")));
  std::string err;
  Fence* f1 = make_fence(iss.get());
  Fence* f2 = make_fence(iss.get());
  Fence* f3 = make_fence(iss.get());
  Fence* f4 = make_fence(iss.get());
  EXPECT_FALSE(fence_is_signaled(f1));
  EXPECT_GE(param(iss.get(), "signaled_calls"), 1);

  // f1 passes without anyone having enabled signalling: only polling sees it.
  ASSERT_EQ(iss->set_param("advance", 1, &err), 0);
  EXPECT_FALSE(fence_test_signaled_flag(f1)) << "nobody enabled signalling, nobody polled";
  EXPECT_TRUE(fence_is_signaled(f1)) << "the signaled op reports the passed seqno";
  EXPECT_TRUE(fence_test_signaled_flag(f1));

  // f2: a callback enables signalling; advancing pushes the signal.
  CbFlag c2;
  EXPECT_EQ(fence_add_callback(f2, &c2.cb, set_flag), 0);
  EXPECT_EQ(param(iss.get(), "enable_calls"), 1);
  EXPECT_EQ(c2.ran.load(), 0);
  ASSERT_EQ(iss->set_param("counter", 2, &err), 0);
  EXPECT_EQ(c2.ran.load(), 1);
  EXPECT_EQ(f2->ops, nullptr);

  // f3 already passed when signalling is enabled: enable_signaling returns false
  // and the core signals on the spot.
  ASSERT_EQ(iss->set_param("advance", 1, &err), 0);
  CbFlag c3;
  EXPECT_EQ(fence_add_callback(f3, &c3.cb, set_flag), -ENOENT);
  EXPECT_TRUE(fence_test_signaled_flag(f3));
  EXPECT_EQ(param(iss.get(), "enable_calls"), 2);

  // Deadlines reach the module; the counter never goes back.
  fence_set_deadline(f4, 12345);
  fence_set_deadline(f4, 99999);
  EXPECT_EQ(param(iss.get(), "deadline_ns"), 12345);
  EXPECT_EQ(iss->set_param("counter", 1, &err), -EINVAL);
  EXPECT_EQ(iss->set_param("advance", -1, &err), -EINVAL);

  // Unload: f4 has not passed, so it is cancelled.
  unload_ok(iss.get());
  EXPECT_EQ(fence_get_status(f4), -ECANCELED);
  EXPECT_EQ(fence_get_status(f1), 1);
  for (Fence* f : {f1, f2, f3, f4}) fence_put(f);
}

TEST(IssuerPolled, WaitEnablesSignaling) {
  IssuerRef iss(load_or_die(module_path("polled")));
  Fence* f = make_fence(iss.get());
  std::atomic<long> r{-100};
  std::thread waiter([&] { r = fence_wait_timeout(f, false, 5'000'000'000LL); });
  while (param(iss.get(), "enable_calls") == 0) std::this_thread::yield();
  std::string err;
  ASSERT_EQ(iss->set_param("advance", 1, &err), 0);
  waiter.join();
  EXPECT_GT(r.load(), 0);
  EXPECT_EQ(fence_get_status(f), 1);
  unload_ok(iss.get());
  fence_put(f);
}

TEST(IssuerPinned, ReleaseOpPinsTheModule) {
  IssuerRef iss(load_or_die(module_path("pinned")));
  Fence* f = make_fence(iss.get());
  Fence* g = make_fence(iss.get());
  EXPECT_EQ(iss->pinned_fences(), 2u);
  EXPECT_EQ(param(iss.get(), "jobs"), 2);
  fence_signal(f);
  EXPECT_NE(f->ops, nullptr) << "a release op prevents detaching";
  EXPECT_EQ(driver_name(f), "detached-driver") << "names are hidden once signalled anyway";
  fence_put(f);  // the module still holds one reference until it sweeps
  fence_signal(g);
  fence_put(g);
  unload_ok(iss.get());  // signal_all drops the module's references: both released
  EXPECT_EQ(iss->pinned_fences(), 0u);
}

// --- a module that forgets its fences -----------------------------------------------------

TEST(IssuerForgetful, OrphanedFencesNeverCallIntoTheModule) {
  IssuerRef iss(load_or_die(test_module_path("forgetful")));
  Fence* f = make_fence(iss.get());
  Fence* g = make_fence(iss.get());
  Fence* h = make_fence(iss.get());
  EXPECT_EQ(driver_name(f), "forgetful");
  unload_ok(iss.get());  // the module never signals them

  // Reuse the record for another load: the orphans must not see this module either.
  IssuerRef other(load_or_die(module_path("names")));
  EXPECT_EQ(driver_name(f), "unloaded-driver");
  EXPECT_EQ(timeline_name(f), "unloaded-timeline");
  EXPECT_FALSE(fence_test_signaled_flag(f));
  EXPECT_TRUE(fence_is_signaled(f)) << "polling an orphan completes it";
  EXPECT_EQ(fence_get_status(f), -ENODEV);
  EXPECT_GT(fence_wait_timeout(g, false, 1'000'000'000LL), 0) << "enable_signaling completes it";
  EXPECT_EQ(fence_get_status(g), -ENODEV);
  fence_set_deadline(h, 1);  // no-op
  fence_put(h);              // dropped unsignalled: freed without calling anything
  fence_put(f);
  fence_put(g);
  unload_ok(other.get());
}
