// The kernel's dma-buf UAPI: the distribution's headers where they exist, plus
// what they lack. sw_sync has no UAPI header (it lives in debugfs), and
// SYNC_IOC_SET_DEADLINE (Linux 6.4) is missing from older linux-libc-dev.
// Numbers and layouts are checked against docs/kernel-map.md's table below.
#pragma once

#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/sync_file.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

// --- sync_file: deadline hint (6.4+) ---------------------------------------------
#ifndef SYNC_IOC_SET_DEADLINE
struct sync_set_deadline {
  __u64 deadline_ns;  // CLOCK_MONOTONIC, absolute
  __u64 pad;          // must be 0
};
#define SYNC_IOC_SET_DEADLINE _IOW(SYNC_IOC_MAGIC, 5, struct sync_set_deadline)
#endif

// --- sw_sync (drivers/dma-buf/sw_sync.c; debugfs sync/sw_sync) ---------------------
namespace dmabuf::kernel::uapi {

struct sw_sync_create_fence_data {
  uint32_t value;  // seqno of the new point
  char name[32];   // ignored by the kernel (6.12: names come from the timeline)
  int32_t fence;   // out: sync_file fd
};

struct sw_sync_get_deadline {
  uint64_t deadline_ns;  // out; must be 0 on input
  uint32_t pad;          // must be 0
  int32_t fence_fd;      // in: a sw_sync sync_file
};

constexpr unsigned long kSwSyncIocCreateFence = _IOWR('W', 0, sw_sync_create_fence_data);
constexpr unsigned long kSwSyncIocInc = _IOW('W', 1, uint32_t);
constexpr unsigned long kSwSyncGetDeadline = _IOWR('W', 2, sw_sync_get_deadline);

}  // namespace dmabuf::kernel::uapi

// --- layout and number checks (generic _IOC encoding: x86-64, arm64, riscv) -------
static_assert(sizeof(struct dma_heap_allocation_data) == 24);
static_assert(offsetof(struct dma_heap_allocation_data, fd) == 8);
static_assert(offsetof(struct dma_heap_allocation_data, fd_flags) == 12);
static_assert(offsetof(struct dma_heap_allocation_data, heap_flags) == 16);
static_assert(sizeof(struct dma_buf_sync) == 8);
static_assert(sizeof(struct dma_buf_export_sync_file) == 8 && sizeof(struct dma_buf_import_sync_file) == 8);
static_assert(sizeof(struct udmabuf_create) == 24 && sizeof(struct udmabuf_create_item) == 24);
static_assert(sizeof(struct udmabuf_create_list) == 8);
static_assert(sizeof(struct sync_merge_data) == 48 && offsetof(struct sync_merge_data, fd2) == 32);
static_assert(sizeof(struct sync_file_info) == 56 && offsetof(struct sync_file_info, sync_fence_info) == 48);
static_assert(sizeof(struct sync_fence_info) == 80 && offsetof(struct sync_fence_info, timestamp_ns) == 72);
static_assert(sizeof(struct sync_set_deadline) == 16);
static_assert(sizeof(dmabuf::kernel::uapi::sw_sync_create_fence_data) == 40);
static_assert(sizeof(dmabuf::kernel::uapi::sw_sync_get_deadline) == 16);
#if defined(__x86_64__) || defined(__aarch64__) || (defined(__riscv) && __riscv_xlen == 64)
static_assert(DMA_HEAP_IOCTL_ALLOC == 0xC0184800);
static_assert(DMA_BUF_IOCTL_SYNC == 0x40086200);
static_assert(DMA_BUF_SET_NAME == 0x40086201);
static_assert(DMA_BUF_IOCTL_EXPORT_SYNC_FILE == 0xC0086202);
static_assert(DMA_BUF_IOCTL_IMPORT_SYNC_FILE == 0x40086203);
static_assert(UDMABUF_CREATE == 0x40187542 && UDMABUF_CREATE_LIST == 0x40087543);
static_assert(SYNC_IOC_MERGE == 0xC0303E03 && SYNC_IOC_FILE_INFO == 0xC0383E04);
static_assert(SYNC_IOC_SET_DEADLINE == 0x40103E05);
static_assert(dmabuf::kernel::uapi::kSwSyncIocCreateFence == 0xC0285700 && dmabuf::kernel::uapi::kSwSyncIocInc == 0x40045701);
static_assert(dmabuf::kernel::uapi::kSwSyncGetDeadline == 0xC0105702);
#endif

