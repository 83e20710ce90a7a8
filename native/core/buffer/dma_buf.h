// struct dma_buf for the emulation: a buffer with a real fd (a sealed memfd, so
// it can be mmapped here and passed to child processes), the exporter's ops,
// a name, CPU-access brackets, attachments and an attached reservation object.
//
// Two reference counts, because the kernel has a file count and userspace
// needs memory safety:
// - file_count is the kernel's file_count(dmabuf->file): the user fd, each CPU
//   mapping, each attachment (the importer's dma_buf_get) and any extra
//   dma_buf_get. When it reaches zero the buffer is released (exporter
//   release, memory back to the platform). fdinfo's `count` shows it.
// - obj_refs keeps the C++ object alive for Mapping objects that outlive their
//   CPU access (an invalidated mapping still points at its buffer's lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/base/list.h"
#include "core/resv/resv.h"

namespace dmabuf {

struct Platform;
struct Heap;
struct DmaBuf;
struct Attachment;
struct Mapping;

enum DmaDataDirection : int {
  DMA_BIDIRECTIONAL = 0,
  DMA_TO_DEVICE = 1,
  DMA_FROM_DEVICE = 2,
  DMA_NONE = 3,
};

// UAPI (include/uapi/linux/dma-buf.h).
constexpr uint64_t kDmaBufSyncRead = 1;
constexpr uint64_t kDmaBufSyncWrite = 2;
constexpr uint64_t kDmaBufSyncRw = 3;
constexpr uint64_t kDmaBufSyncStart = 0;
constexpr uint64_t kDmaBufSyncEnd = 4;
constexpr uint64_t kDmaBufSyncValidFlagsMask = 7;
constexpr size_t kDmaBufNameLen = 32;

// A run of physically contiguous memory: one scatterlist entry.
struct SgEntry {
  uint64_t phys;    // pfn << PAGE_SHIFT
  uint64_t length;  // bytes
};
struct SgTable {
  std::vector<SgEntry> entries;
  // Mapped with DMA_ATTR_CC_SHARED: the device sees shared (decrypted) memory.
  bool cc_shared = false;
};

// An mmap request as the exporter's mmap op sees it.
struct MmapRequest {
  uint64_t pgoff;
  uint64_t len;
  int prot;
  int flags;  // MAP_SHARED or MAP_PRIVATE
};

// struct dma_buf_ops, minus what the emulation does not need (vmap).
struct DmaBufOps {
  int (*attach)(DmaBuf* buf, Attachment* a);       // optional
  void (*detach)(DmaBuf* buf, Attachment* a);      // optional
  int (*pin)(Attachment* a);                       // non-null: a dynamic exporter
  void (*unpin)(Attachment* a);
  int (*map_dma_buf)(Attachment* a, DmaDataDirection dir, const SgTable** out);
  void (*unmap_dma_buf)(Attachment* a, const SgTable* sgt, DmaDataDirection dir);
  int (*begin_cpu_access)(DmaBuf* buf, DmaDataDirection dir);  // optional
  int (*end_cpu_access)(DmaBuf* buf, DmaDataDirection dir);    // optional
  // The exporter's checks on an mmap (0 or -errno); null = no mmap: -EINVAL.
  int (*mmap)(DmaBuf* buf, const MmapRequest& req);
  void (*release)(DmaBuf* buf);
  // Emulation only: the exporter's own scatterlist, for tests and state checks.
  const SgTable* (*sg_table)(DmaBuf* buf);
};

struct DmaBuf {
  Platform* platform;  // a reference, dropped after release
  const DmaBufOps* ops;
  void* priv;
  uint64_t size;
  std::string exp_name;
  uint64_t ino;
  uint32_t f_flags;  // O_ACCMODE bits of the export flags (the file's f_flags)
  uint32_t f_mode;   // FMODE_* as the kernel computes it for this file

  std::atomic<long> file_count{1};
  std::atomic<long> obj_refs{1};

  // The memfd between dma_buf_export and dma_buf_fd; dma_buf_fd turns it into
  // user_fd (reopened with the buffer's access mode if that is not O_RDWR).
  // One fd per buffer: after close nothing needs the CPU view (mappings are
  // invalidated), and devices see pages, not the memfd.
  int file_fd = -1;
  std::atomic<int> user_fd{-1};  // the fd handed out by dma_buf_fd, -1 once closed

  std::mutex name_lock;
  bool has_name = false;
  std::string name;

  // dmabuf->resv: the exporter's, or own_resv (the kernel embeds it after the
  // struct). Its lock serialises attach/detach, pins, importer mappings and
  // revocation, and is held around move_notify.
  Resv* resv = nullptr;
  Resv own_resv;
  // Attachments, newest first as list_add keeps them. Changed under the
  // reservation lock *and* attach_lock; read under either. Exporters' CPU-access
  // hooks read them under attach_lock alone, so SYNC works while the caller
  // holds the reservation lock (as the kernel's heaps use their own lock).
  std::mutex attach_lock;
  std::vector<Attachment*> attachments;

  // Guards `mappings`, each Mapping's validity, and the user fd against being
  // closed (and its number reused) while mmap or fdinfo use it.
  std::mutex map_lock;
  std::vector<Mapping*> mappings;  // live CPU mappings

  ListHead node;  // on platform->bufs

  std::atomic<uint64_t> cpu_begin{0}, cpu_end{0};
};

// What an exporter passes to dma_buf_export.
struct ExportInfo {
  Platform* platform = nullptr;
  Resv* resv = nullptr;  // share an existing reservation object (null: the buffer's own)
  const char* exp_name = nullptr;
  const DmaBufOps* ops = nullptr;
  uint64_t size = 0;
  uint32_t flags = 0;  // the fd flags; their access mode becomes the file's
  void* priv = nullptr;
  // An existing memfd to be the buffer's file (adopted, also on failure),
  // instead of a new one: the exporter has checked its size and seals.
  int memfd = -1;
};

/**
 * dma_buf_export() - create a buffer and its backing file
 *
 * The file is a memfd of @info.size bytes, sealed against resizing (or
 * @info.memfd, adopted); the buffer goes on the platform's list. The exporter's release op runs when the
 * last file reference goes, including on a later failure of the caller.
 *
 * Context: any thread; takes the platform's buffer-list lock.
 * Returns: 0 with *@out holding the one file reference (no fd yet); -EINVAL
 * (with a warning) for missing ops (release, map_dma_buf, unmap_dma_buf), a
 * null platform or name, or a zero size; -ENOMEM/-EMFILE if the memfd cannot
 * be made (or the "dma_buf_export" fault point fires).
 */
int dma_buf_export(const ExportInfo& info, DmaBuf** out);

/**
 * dma_buf_fd() - install the user's fd and hand it the caller's reference
 * @fd_flags: O_CLOEXEC is honoured; the access mode is the buffer's own
 *
 * The fd is the memfd itself, or a reopen with the buffer's access mode.
 *
 * Context: any thread; once per buffer.
 * Returns: the fd; -EINVAL for a null @buf or an fd installed already,
 * -EMFILE ("dma_buf_fd" fault point) or the open's error. On failure the
 * caller still owns its reference.
 */
int dma_buf_fd(DmaBuf* buf, uint32_t fd_flags);

/**
 * dma_buf_get() - take a file reference (get_dma_buf)
 *
 * Context: any; the caller must already hold one.
 */
void dma_buf_get(DmaBuf* buf);

/**
 * dma_buf_put() - drop a file reference (nullptr-tolerant); the last one
 * releases the buffer (dma_buf_release())
 *
 * Context: any thread; must not hold the buffer's reservation lock when this
 * may be the last reference.
 */
void dma_buf_put(DmaBuf* buf);

/**
 * dma_buf_close() - close(fd) on the user's fd, made safe for JavaScript
 *
 * Also invalidates every CPU mapping (they become PROT_NONE), then drops the
 * fd's reference. The buffer lives on while attachments or other references
 * hold it; the caller must not use @buf afterwards unless it holds one.
 *
 * Context: any thread; takes map_lock. Returns: 0; -EBADF if already closed
 * (or a null @buf).
 */
int dma_buf_close(DmaBuf* buf);

/**
 * dma_buf_from_fd() - dma_buf_get(fd): a new reference to the buffer behind
 * one of our user fds
 *
 * Context: any. Returns: 0; -EBADF for a negative fd or one we did not hand
 * out (or already closed).
 */
int dma_buf_from_fd(int fd, DmaBuf** out);

/**
 * dma_buf_close_fd() - close(fd) for an fd from dma_heap_ioctl or dma_buf_fd:
 * dma_buf_close() on the buffer behind it
 *
 * Returns: 0; -EBADF if it is not one of ours (or a racing close won).
 */
int dma_buf_close_fd(int fd);

/**
 * dma_buf_set_name() - DMA_BUF_SET_NAME: the first NUL-terminated string in
 * @name[0..@len)
 *
 * Context: any thread; takes name_lock (and attach_lock before 5.16).
 * Returns: 0; -EINVAL for a null @buf or a name of 32 bytes or more (no NUL
 * within DMA_BUF_NAME_LEN); -EFAULT for a null @name; -EBUSY with
 * attachments on kernels before 5.16.
 */
int dma_buf_set_name(DmaBuf* buf, const char* name, size_t len);

/**
 * dma_buf_get_name() - copy the name into *@name (if non-null)
 *
 * Returns: false if SET_NAME was never used (*@name untouched).
 */
bool dma_buf_get_name(DmaBuf* buf, std::string* name);

/**
 * dma_buf_cpu_sync() - DMA_BUF_IOCTL_SYNC: START runs
 * dma_buf_begin_cpu_access(), END dma_buf_end_cpu_access(); neither is
 * paired or enforced
 *
 * Context: as dma_buf_begin_cpu_access() for START.
 * Returns: 0, the exporter's or the wait's error; -EINVAL for flags outside
 * DMA_BUF_SYNC_VALID_FLAGS_MASK or without a READ/WRITE bit; -EBADF for a
 * null @buf.
 */
int dma_buf_cpu_sync(DmaBuf* buf, uint64_t flags);

/**
 * dma_buf_begin_cpu_access() - the exporter's begin_cpu_access, then wait for
 * the implicit fences (the writers for a read; every reader and writer for a
 * write or bidirectional access)
 *
 * Context: may sleep, without a timeout, until those fences signal. May be
 * called with the reservation lock held (exporters' hooks use attach_lock).
 * Returns: 0, the exporter's or the wait's error, -EINVAL for a null @buf.
 */
int dma_buf_begin_cpu_access(DmaBuf* buf, DmaDataDirection dir);

/**
 * dma_buf_end_cpu_access() - the exporter's end_cpu_access, if any
 *
 * Returns: 0, the exporter's error, -EINVAL for a null @buf.
 */
int dma_buf_end_cpu_access(DmaBuf* buf, DmaDataDirection dir);

/**
 * dma_buf_sg_table() - a copy of the exporter's scatterlist
 *
 * One entry per chunk for the system heap, one for CMA; empty for exporters
 * without the sg_table op (or a null @buf).
 */
SgTable dma_buf_sg_table(DmaBuf* buf);

/**
 * dma_buf_release() - release the buffer once file_count is zero: off the
 * platform's list, exporter release, reservation object torn down
 *
 * Called by dma_buf_put(); the C++ object lives on while obj_refs holds it.
 */
void dma_buf_release(DmaBuf* buf);

/**
 * dma_buf_obj_get() - keep the C++ object (not the buffer) alive
 */
void dma_buf_obj_get(DmaBuf* buf);

/**
 * dma_buf_obj_put() - drop that; the last one frees the object and its
 * platform reference
 */
void dma_buf_obj_put(DmaBuf* buf);

// --- fdinfo and debugfs (dma_buf_fdinfo.cc) ---

/**
 * dma_buf_fdinfo() - /proc/self/fdinfo/<fd> for the user fd, exactly as the
 * kernel prints it: "pos:\t0\nflags:\t0<octal>\nmnt_id:\t<n>\nino:\t<n>\n
 * size:\t<n>\ncount:\t<n>\nexp_name:\t<name>\n", and "name:\t<name>\n" once named
 *
 * Context: any thread; takes map_lock. Returns: 0; -EBADF once closed;
 * -EINVAL for null arguments.
 */
int dma_buf_fdinfo(DmaBuf* buf, std::string* out);

/**
 * dma_buf_link() - the /proc/self/fd/<fd> link target: "/dmabuf:<name>"
 */
std::string dma_buf_link(DmaBuf* buf);

struct BufInfoTotals {
  uint64_t objects = 0;
  uint64_t bytes = 0;
};
/**
 * dma_buf_bufinfo() - /sys/kernel/debug/dma_buf/bufinfo for one platform,
 * newest buffer first, with each buffer's fences (dma_resv_describe())
 * @totals: optional; the object and byte counts of the last line
 *
 * Context: may sleep: takes the platform's buffer-list lock and each
 * buffer's reservation lock, except one the calling thread holds already.
 */
std::string dma_buf_bufinfo(Platform* p, BufInfoTotals* totals = nullptr);

}  // namespace dmabuf
