// dma_resv: fence list management under the ww_mutex, RCU readers, iterators.
#include "core/resv/resv.h"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "core/base/warn.h"
#include "core/fence/array.h"
#include "core/fence/chain.h"

namespace dmabuf {

WwClass reservation_ww_class{.stamp{1}, .is_wait_die = true, .name = "reservation_ww_class"};

namespace {

constexpr uintptr_t kUsageMask = 3;  // low pointer bits carry the usage
constexpr size_t kHeader = offsetof(ResvList, table);

// kmalloc's size classes: the list uses whatever its bucket can hold.
size_t kmalloc_bucket(size_t size) {
  static constexpr size_t kBuckets[] = {8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192};
  for (size_t b : kBuckets)
    if (size <= b) return b;
  size_t pages = 4096;
  while (pages < size) pages <<= 1;
  return pages;
}

ResvList* list_alloc(unsigned max_fences) {
  if (max_fences > (1u << 26)) return nullptr;  // would overflow; -ENOMEM to the caller
  const size_t size = kmalloc_bucket(kHeader + sizeof(uintptr_t) * std::max(max_fences, 1u));
  auto* list = static_cast<ResvList*>(std::calloc(1, size));
  if (!list) return nullptr;
  list->max_fences = static_cast<uint32_t>((size - kHeader) / sizeof(uintptr_t));
  return list;
}

void list_free_rcu(rcu::DeferredFree* first) {
  while (first) {
    rcu::DeferredFree* next = first->next;
    std::free(container_of(first, &ResvList::rcu));
    first = next;
  }
}

// Drops every fence of @list and frees it after a grace period.
void list_free(ResvList* list) {
  if (!list) return;
  const uint32_t n = list->num_fences.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < n; ++i)
    fence_put(reinterpret_cast<Fence*>(list->table[i].load(std::memory_order_relaxed) & ~kUsageMask));
  rcu::defer_free(&list->rcu, list_free_rcu);
}

void list_entry(ResvList* list, unsigned index, Fence** fence, ResvUsage* usage) {
  const uintptr_t v = list->table[index].load(std::memory_order_acquire);
  *fence = reinterpret_cast<Fence*>(v & ~kUsageMask);
  *usage = static_cast<ResvUsage>(v & kUsageMask);
}

void list_set(ResvList* list, unsigned index, Fence* fence, ResvUsage usage) {
  list->table[index].store(reinterpret_cast<uintptr_t>(fence) | usage, std::memory_order_release);
}

ResvList* fences_list(Resv* obj) { return obj->fences.load(std::memory_order_acquire); }

unsigned roundup_pow_of_two(unsigned n) {
  unsigned p = 1;
  while (p < n && p < (1u << 31)) p <<= 1;
  return p;
}

void iter_restart_unlocked(ResvIter* cursor) {
  cursor->index = 0;
  cursor->num_fences = 0;
  cursor->fences = fences_list(cursor->obj);
  if (cursor->fences) cursor->num_fences = cursor->fences->num_fences.load(std::memory_order_acquire);
  cursor->is_restarted = true;
}

// RCU read side held. Advances to the next pending fence of a matching usage,
// holding a reference; a fence whose refcount already hit zero means the list
// changed under us, so start over.
void iter_walk_unlocked(ResvIter* cursor) {
  for (;;) {
    fence_put(cursor->fence);
    if (cursor->index >= cursor->num_fences) {
      cursor->fence = nullptr;
      return;
    }
    Fence* fence;
    list_entry(cursor->fences, cursor->index++, &fence, &cursor->fence_usage);
    cursor->fence = fence_get_rcu(fence);
    if (!cursor->fence) {
      iter_restart_unlocked(cursor);
      continue;
    }
    if (!fence_is_signaled(cursor->fence) && cursor->usage >= cursor->fence_usage) return;
  }
}

}  // namespace

const char* resv_usage_name(ResvUsage usage) {
  static const char* const kNames[] = {"kernel", "write", "read", "bookkeep"};
  return usage <= RESV_USAGE_BOOKKEEP ? kNames[usage] : "invalid";
}

void resv_init(Resv* obj) {
  ww_mutex_init(&obj->lock, &reservation_ww_class);
  obj->fences.store(nullptr, std::memory_order_relaxed);
}

void resv_fini(Resv* obj) {
  // Nobody may use the object any more, so no lock is needed.
  list_free(obj->fences.exchange(nullptr, std::memory_order_acq_rel));
  ww_mutex_destroy(&obj->lock);
}

void resv_assert_held(Resv* obj) {
  if (!resv_held(obj)) warn("resv_assert_held: reservation object not locked by this thread");
}

int resv_reserve_fences(Resv* obj, unsigned num_fences) {
  resv_assert_held(obj);
  if (num_fences == 0) {
    warn("resv_reserve_fences: num_fences == 0");
    return -EINVAL;
  }
  // One read section around the scan: fence_is_signaled's own sections then
  // nest, which in the bp flavor skips their memory barriers.
  rcu::ReadGuard rcu;
  ResvList* old = fences_list(obj);
  const unsigned old_num = old ? old->num_fences.load(std::memory_order_relaxed) : 0;
  unsigned max;
  if (old && old->max_fences) {
    if (static_cast<uint64_t>(old_num) + num_fences <= old->max_fences) return 0;
    const uint64_t want = std::max<uint64_t>(static_cast<uint64_t>(old_num) + num_fences,
                                             static_cast<uint64_t>(old->max_fences) * 2);
    if (want > (1u << 26)) return -ENOMEM;
    max = static_cast<unsigned>(want);
  } else {
    max = std::max(4u, roundup_pow_of_two(num_fences));
  }
  ResvList* list = list_alloc(max);
  if (!list) return -ENOMEM;
  max = list->max_fences;

  // Pending fences move over; signalled ones are parked at the end of the new
  // table (beyond num_fences, invisible to readers) and put once it is public.
  unsigned j = 0, k = max;
  for (unsigned i = 0; i < old_num; ++i) {
    Fence* fence;
    ResvUsage usage;
    list_entry(old, i, &fence, &usage);
    if (fence_is_signaled(fence))
      list->table[--k].store(reinterpret_cast<uintptr_t>(fence), std::memory_order_relaxed);
    else
      list_set(list, j++, fence, usage);
  }
  list->num_fences.store(j, std::memory_order_relaxed);
  // Same set of pending fences before and after: readers may see either list.
  obj->fences.store(list, std::memory_order_release);
  if (!old) return 0;
  for (unsigned i = k; i < max; ++i)
    fence_put(reinterpret_cast<Fence*>(list->table[i].load(std::memory_order_relaxed)));
  rcu::defer_free(&old->rcu, list_free_rcu);  // its references moved or were dropped
  return 0;
}

void resv_add_fence(Resv* obj, Fence* fence, ResvUsage usage) {
  resv_assert_held(obj);
  // Containers would hide their members from the per-context replacement.
  if (fence_is_container(fence)) warn("resv_add_fence: adding a container; add its members");
  fence_get(fence);

  rcu::ReadGuard rcu;  // see resv_reserve_fences
  ResvList* list = fences_list(obj);
  unsigned count = list ? list->num_fences.load(std::memory_order_relaxed) : 0;
  for (unsigned i = 0; i < count; ++i) {
    Fence* old;
    ResvUsage old_usage;
    list_entry(list, i, &old, &old_usage);
    if ((old->context == fence->context && old_usage >= usage &&
         fence_is_later_or_same(fence, old)) ||
        fence_is_signaled(old)) {
      list_set(list, i, fence, usage);
      fence_put(old);
      return;
    }
  }
  if (!list || count >= list->max_fences) {
    warn("resv_add_fence: no reserved slot (call resv_reserve_fences first)");
    if (resv_reserve_fences(obj, 1) != 0) {
      warn("resv_add_fence: out of memory, fence dropped");
      fence_put(fence);
      return;
    }
    list = fences_list(obj);
    count = list->num_fences.load(std::memory_order_relaxed);
  }
  list_set(list, count, fence, usage);
  // The entry must be visible before readers may index it.
  list->num_fences.store(count + 1, std::memory_order_seq_cst);
}

void resv_replace_fences(Resv* obj, uint64_t context, Fence* replacement, ResvUsage usage) {
  resv_assert_held(obj);
  if (!replacement) {
    warn("resv_replace_fences: null replacement");
    return;
  }
  ResvList* list = fences_list(obj);
  const unsigned count = list ? list->num_fences.load(std::memory_order_relaxed) : 0;
  for (unsigned i = 0; i < count; ++i) {
    Fence* old;
    ResvUsage old_usage;
    list_entry(list, i, &old, &old_usage);
    if (old->context != context) continue;
    list_set(list, i, fence_get(replacement), usage);
    fence_put(old);
  }
}

int resv_copy_fences(Resv* dst, Resv* src) {
  resv_assert_held(dst);
  ResvList* list = nullptr;
  ResvIter cursor;
  Fence* f;
  resv_iter_begin(&cursor, src, RESV_USAGE_BOOKKEEP);
  resv_for_each_fence_unlocked(&cursor, f) {
    if (resv_iter_is_restarted(&cursor)) {
      list_free(list);
      list = list_alloc(cursor.num_fences);
      if (!list) {
        resv_iter_end(&cursor);
        return -ENOMEM;
      }
    }
    const uint32_t n = list->num_fences.load(std::memory_order_relaxed);
    list_set(list, n, fence_get(f), resv_iter_usage(&cursor));
    list->num_fences.store(n + 1, std::memory_order_relaxed);
  }
  resv_iter_end(&cursor);
  list_free(dst->fences.exchange(list, std::memory_order_acq_rel));
  return 0;
}

Fence* resv_iter_first_unlocked(ResvIter* cursor) {
  rcu::ReadGuard rcu;
  do {
    iter_restart_unlocked(cursor);
    iter_walk_unlocked(cursor);
  } while (fences_list(cursor->obj) != cursor->fences);
  return cursor->fence;
}

Fence* resv_iter_next_unlocked(ResvIter* cursor) {
  rcu::ReadGuard rcu;
  cursor->is_restarted = false;
  bool restart = fences_list(cursor->obj) != cursor->fences;
  do {
    if (restart) iter_restart_unlocked(cursor);
    iter_walk_unlocked(cursor);
    restart = true;
  } while (fences_list(cursor->obj) != cursor->fences);
  return cursor->fence;
}

Fence* resv_iter_first(ResvIter* cursor) {
  resv_assert_held(cursor->obj);
  cursor->index = 0;
  cursor->fences = fences_list(cursor->obj);
  Fence* fence = resv_iter_next(cursor);
  cursor->is_restarted = true;
  return fence;
}

Fence* resv_iter_next(ResvIter* cursor) {
  resv_assert_held(cursor->obj);
  cursor->is_restarted = false;
  Fence* fence;
  do {
    if (!cursor->fences ||
        cursor->index >= cursor->fences->num_fences.load(std::memory_order_relaxed))
      return nullptr;
    list_entry(cursor->fences, cursor->index++, &fence, &cursor->fence_usage);
  } while (cursor->fence_usage > cursor->usage);
  return fence;
}

int resv_get_fences(Resv* obj, ResvUsage usage, unsigned* num_fences, Fence*** fences) {
  *num_fences = 0;
  *fences = nullptr;
  ResvIter cursor;
  Fence* f;
  resv_iter_begin(&cursor, obj, usage);
  resv_for_each_fence_unlocked(&cursor, f) {
    if (resv_iter_is_restarted(&cursor)) {
      // Start over with room for everything the list can hold.
      while (*num_fences) fence_put((*fences)[--*num_fences]);
      const size_t count = static_cast<size_t>(cursor.num_fences) + 1;
      auto** grown = static_cast<Fence**>(std::realloc(*fences, count * sizeof(Fence*)));
      if (!grown) {
        std::free(*fences);
        *fences = nullptr;
        resv_iter_end(&cursor);
        return -ENOMEM;
      }
      *fences = grown;
    }
    (*fences)[(*num_fences)++] = fence_get(f);
  }
  resv_iter_end(&cursor);
  return 0;
}

int resv_get_singleton(Resv* obj, ResvUsage usage, Fence** fence) {
  unsigned count;
  Fence** fences;
  const int err = resv_get_fences(obj, usage, &count, &fences);
  if (err) return err;
  if (count == 0) {
    *fence = nullptr;
    return 0;
  }
  if (count == 1) {
    *fence = fences[0];
    std::free(fences);
    return 0;
  }
  FenceArray* array = fence_array_create(static_cast<int>(count), fences, fence_context_alloc(1), 1);
  if (!array) {
    while (count--) fence_put(fences[count]);
    std::free(fences);
    return -ENOMEM;
  }
  *fence = &array->base;
  return 0;
}

long resv_wait_timeout(Resv* obj, ResvUsage usage, bool intr, int64_t timeout_ns) {
  if (timeout_ns < 0) {
    warn("resv_wait_timeout: negative timeout");
    return -EINVAL;
  }
  // A zero timeout still "waits" the shortest time, which reports 1 when
  // nothing is pending and 0 otherwise.
  long ret = timeout_ns ? static_cast<long>(timeout_ns) : 1;
  ResvIter cursor;
  Fence* f;
  resv_iter_begin(&cursor, obj, usage);
  resv_for_each_fence_unlocked(&cursor, f) {
    ret = fence_wait_timeout(f, intr, ret);
    if (ret <= 0) break;
  }
  resv_iter_end(&cursor);
  return ret;
}

void resv_set_deadline(Resv* obj, ResvUsage usage, int64_t deadline_ns) {
  ResvIter cursor;
  Fence* f;
  resv_iter_begin(&cursor, obj, usage);
  resv_for_each_fence_unlocked(&cursor, f) fence_set_deadline(f, deadline_ns);
  resv_iter_end(&cursor);
}

bool resv_test_signaled(Resv* obj, ResvUsage usage) {
  ResvIter cursor;
  resv_iter_begin(&cursor, obj, usage);
  const bool pending = resv_iter_first_unlocked(&cursor) != nullptr;
  resv_iter_end(&cursor);
  return !pending;
}

std::string resv_describe(Resv* obj) {
  std::string out;
  ResvIter cursor;
  Fence* f;
  resv_for_each_fence(&cursor, obj, RESV_USAGE_READ, f) {
    out += '\t';
    out += resv_usage_name(resv_iter_usage(&cursor));
    out += " fence:";
    out += fence_describe(f);
  }
  return out;
}

// --- checked entry points ----------------------------------------------------------

int resv_lock_checked(Resv* obj, WwAcquireCtx* ctx) {
  if (ctx && ctx->done) return -EINVAL;
  if (resv_held(obj) && (!ctx || resv_locking_ctx(obj) != ctx)) return -EBUSY;
  return resv_lock_interruptible(obj, ctx);
}

int resv_lock_slow_checked(Resv* obj, WwAcquireCtx* ctx) {
  if (ctx && ctx->acquired != 0) return -EBUSY;
  if (resv_held(obj)) return -EALREADY;
  return resv_lock_slow_interruptible(obj, ctx);
}

int resv_unlock_checked(Resv* obj) {
  if (!resv_held(obj)) return -EPERM;
  resv_unlock(obj);
  return 0;
}

int resv_reserve_fences_checked(Resv* obj, unsigned num_fences) {
  if (!resv_held(obj)) return -EPERM;
  return resv_reserve_fences(obj, num_fences);
}

int resv_add_fence_checked(Resv* obj, Fence* fence, ResvUsage usage) {
  if (!resv_held(obj)) return -EPERM;
  if (fence_is_container(fence)) return -EINVAL;
  resv_add_fence(obj, fence, usage);
  return 0;
}

int resv_replace_fences_checked(Resv* obj, uint64_t context, Fence* replacement, ResvUsage usage) {
  if (!resv_held(obj)) return -EPERM;
  resv_replace_fences(obj, context, replacement, usage);
  return 0;
}

int resv_copy_fences_checked(Resv* dst, Resv* src) {
  if (!resv_held(dst)) return -EPERM;
  return resv_copy_fences(dst, src);
}

int resv_describe_checked(Resv* obj, std::string* out) {
  if (!resv_held(obj)) return -EPERM;
  *out = resv_describe(obj);
  return 0;
}

int resv_list_fences(Resv* obj, ResvUsage usage, std::vector<Fence*>* fences, std::vector<ResvUsage>* usages) {
  fences->clear();
  usages->clear();
  ResvIter cursor;
  if (resv_held(obj)) {
    Fence* f;
    resv_for_each_fence(&cursor, obj, usage, f) {
      fences->push_back(fence_get(f));
      usages->push_back(resv_iter_usage(&cursor));
    }
    return 0;
  }
  resv_iter_begin(&cursor, obj, usage);
  for (Fence* f = resv_iter_first_unlocked(&cursor); f; f = resv_iter_next_unlocked(&cursor)) {
    if (resv_iter_is_restarted(&cursor)) {
      for (Fence* g : *fences) fence_put(g);
      fences->clear();
      usages->clear();
    }
    fences->push_back(fence_get(f));
    usages->push_back(resv_iter_usage(&cursor));
  }
  resv_iter_end(&cursor);
  return 0;
}

}  // namespace dmabuf
