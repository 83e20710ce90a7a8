// A revocable exporter, modelled on VFIO's PCI BAR dma-bufs
// (drivers/vfio/pci/vfio_pci_dmabuf.c, 2025-2026): device MMIO exported as a
// dma-buf that the device can take back (BAR access disabled, reset, close).
// Behaviour, as of the "Prevent from pinned DMABUF importers" fix (v6.19):
// - it is a dynamic exporter whose pin always fails with -EOPNOTSUPP, so
//   pinned importers and static importers (which the core pins at attach)
//   are refused;
// - attach needs allow_peer2peer (MMIO is only reachable peer to peer):
//   -EOPNOTSUPP otherwise; while revoked, attach and map fail with -ENODEV;
// - revoking (and restoring) calls move_notify on every importer under the
//   reservation lock, and zaps CPU mappings (here: invalidates them);
// - mmap needs MAP_SHARED.
#pragma once

#include <cstdint>

namespace dmabuf {

struct Platform;
struct DmaBuf;

// VFIO_DEVICE_FEATURE_DMA_BUF for a `size`-byte BAR range: exports and
// installs an fd with `open_flags` (O_ACCMODE | O_CLOEXEC). -EINVAL for a size
// that is zero or not page aligned, or other open_flags bits. exp_name is
// "vfio_pci_core" (KBUILD_MODNAME of the exporting module).
int vfio_dmabuf_export(Platform* p, uint64_t size, uint32_t open_flags, DmaBuf** out);

// Memory disabled (revoked = true) or enabled again. No-op if unchanged.
// -EINVAL if `buf` is not a VFIO buffer; -EDEADLK (nothing done) when the
// calling thread holds the buffer's reservation lock (the move takes it).
int vfio_dmabuf_set_revoked(DmaBuf* buf, bool revoked);
// 1 revoked, 0 not (or not a VFIO buffer), -EDEADLK when the calling thread
// holds the reservation lock (the query takes it).
int vfio_dmabuf_revoked(DmaBuf* buf);
// The same as a bool (false for -EDEADLK too).
bool vfio_dmabuf_is_revoked(DmaBuf* buf);

}  // namespace dmabuf
