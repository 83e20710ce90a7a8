// ThreadSanitizer suppressions for the C++ test binary. liburcu is not built
// with TSan: urcu_bp_barrier() callocs its completion records on the calling
// thread and the call_rcu thread frees them, ordered only by liburcu's own
// atomics and futexes, which TSan cannot see. rcu::barrier() reaches it once
// rcu::call() has been used (fence_edge_test does). The report names
// urcu_bp_barrier in the allocating stack, so this suppresses exactly that
// pair and nothing of ours.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:urcu_bp_barrier\n";
}
#endif
