// Registration of the built-in heap kinds, called once by platform_create in
// the kernel's initcall order. Internal to native/core.
#pragma once

#include <cstdint>
#include <vector>

namespace dmabuf {

struct Platform;

// "system", and "system_cc_shared" when the platform is a CC guest whose
// architecture provides set_memory_{de,en}crypted (heap_system.cc).
int system_heap_create(Platform* p);
// The CMA area's heap(s): the default name and, from 6.17, the legacy
// duplicate (heap_cma.cc).
int cma_heap_create(Platform* p);
// The TEE protected heaps (heap_protected.cc).
int protected_heaps_create(Platform* p);

}  // namespace dmabuf
