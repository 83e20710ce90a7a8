// Kernel-fidelity fixes checked against the kernel's sources (issue 10):
// dma_fence_describe() polls with dma_fence_is_signaled(); Linux 7.1's
// dma_fence_array_create() takes a 32-bit seqno and signal_on_any; the shared
// stub is initialised (and stamped) once, when the subsystem starts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/base/irq_work.h"
#include "core/base/monotonic.h"
#include "core/fence/array.h"
#include "core/fence/fence.h"

using namespace dmabuf;

namespace {

const char* name(Fence*) { return "fidelity"; }
bool always_signaled(Fence*) { return true; }
// A polled issuer: nothing signals the fence until someone asks.
const FenceOps kPolledOps = {
    .get_driver_name = name,
    .get_timeline_name = name,
    .signaled = always_signaled,
};
const FenceOps kPlainOps = {.get_driver_name = name, .get_timeline_name = name};

Fence* new_fence(const FenceOps* ops) {
  Fence* f = fence_alloc();
  fence_init(f, ops, nullptr, fence_context_alloc(1), 1);
  return f;
}

FenceArray* array_of(std::vector<Fence*>& members, bool any, unsigned seqno = 1) {
  auto** fences = static_cast<Fence**>(std::malloc(sizeof(Fence*) * members.size()));
  for (size_t i = 0; i < members.size(); ++i) fences[i] = fence_get(members[i]);
  return fence_array_create(static_cast<int>(members.size()), fences, fence_context_alloc(1), seqno, any);
}

}  // namespace

TEST(KernelFidelity, DescribePollsTheSignaledOp) {
  Fence* f = new_fence(&kPolledOps);
  ASSERT_FALSE(fence_test_signaled_flag(f));
  const std::string d = fence_describe(f);
  EXPECT_NE(d.find(" signalled"), std::string::npos) << d;
  EXPECT_EQ(d.find("unsignalled"), std::string::npos) << d;
  EXPECT_TRUE(fence_test_signaled_flag(f));  // is_signaled signalled it, as in the kernel
  fence_put(f);
}

TEST(KernelFidelity, DescribeOfAFinishedArrayIsSignalled) {
  std::vector<Fence*> m = {new_fence(&kPlainOps), new_fence(&kPlainOps)};
  FenceArray* a = array_of(m, false);
  for (Fence* f : m) fence_signal(f);
  // Nobody enabled signalling: only polling finds the array done.
  EXPECT_EQ(fence_describe(&a->base).find("unsignalled"), std::string::npos);
  fence_put(&a->base);
  for (Fence* f : m) fence_put(f);
}

TEST(KernelFidelity, ArraySeqnoIs32Bits) {
  std::vector<Fence*> m = {new_fence(&kPlainOps)};
  FenceArray* a = array_of(m, false, 0xffffffffu);
  EXPECT_EQ(a->base.seqno, 0xffffffffu);
  fence_put(&a->base);
  fence_put(m[0]);
}

TEST(KernelFidelity, SignalOnAnySignalsWithTheFirstMember) {
  std::vector<Fence*> m = {new_fence(&kPlainOps), new_fence(&kPlainOps), new_fence(&kPlainOps)};
  FenceArray* a = array_of(m, true);
  fence_enable_sw_signaling(&a->base);
  EXPECT_FALSE(fence_is_signaled(&a->base));
  fence_signal(m[1]);
  irq_work_barrier();
  EXPECT_TRUE(fence_test_signaled_flag(&a->base));
  EXPECT_EQ(fence_get_status(&a->base), 1);
  fence_signal(m[0]);  // the others signalling later changes nothing
  fence_signal(m[2]);
  EXPECT_EQ(fence_get_status(&a->base), 1);
  fence_put(&a->base);
  for (Fence* f : m) fence_put(f);
}

TEST(KernelFidelity, SignalOnAnyByPolling) {
  std::vector<Fence*> m = {new_fence(&kPlainOps), new_fence(&kPlainOps)};
  FenceArray* a = array_of(m, true);
  EXPECT_FALSE(fence_is_signaled(&a->base));
  fence_signal(m[0]);
  EXPECT_TRUE(fence_is_signaled(&a->base));
  fence_put(&a->base);
  for (Fence* f : m) fence_put(f);
}

TEST(KernelFidelity, SignalOnAllWaitsForEveryMember) {
  std::vector<Fence*> m = {new_fence(&kPlainOps), new_fence(&kPlainOps)};
  FenceArray* a = array_of(m, false);
  fence_signal(m[0]);
  EXPECT_FALSE(fence_is_signaled(&a->base));
  fence_signal(m[1]);
  EXPECT_TRUE(fence_is_signaled(&a->base));
  fence_put(&a->base);
  for (Fence* f : m) fence_put(f);
}

TEST(KernelFidelity, StubIsStampedAtSubsystemStart) {
  Fence* f = new_fence(&kPlainOps);
  fence_signal(f);
  Fence* stub = fence_get_stub();
  ASSERT_TRUE(fence_test_signaled_flag(stub));
  // Stamped when the library loaded, before this test's fence signalled.
  EXPECT_LT(fence_timestamp(stub), fence_timestamp(f));
  Fence* again = fence_get_stub();
  EXPECT_EQ(again, stub);
  fence_put(again);
  fence_put(stub);
  fence_put(f);
}
