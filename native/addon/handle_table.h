// Tokens for native objects that JavaScript holds: a slot index and a
// generation packed into one number. JS can hand back any number at all, so a
// lookup checks the index range and the generation: a forged, stale or
// released token finds nothing, and no pointer ever crosses the boundary.
// One table per environment, used on its JS thread only (no locking).
#pragma once

#include <cstdint>
#include <vector>

namespace dmabuf::addon {

template <typename T>
class HandleTable {
 public:
  // 26 bits of index (67M live objects per environment) and 27 of generation
  // (a slot is reused 134M times before a stale token could match again):
  // 53 bits, so every token is an exact double.
  static constexpr int kIndexBits = 26;
  static constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;
  static constexpr uint32_t kGenLimit = uint32_t{1} << 27;

  // Stores `p` and returns its token (never 0), or 0 when the table is full.
  // `mark` is one bit the owner keeps with a live entry (see GetClearingMark).
  // May throw std::bad_alloc when it grows.
  double Insert(T* p, bool mark = false) {
    uint32_t i;
    if (free_ != kNone) {
      i = free_;
      free_ = slots_[i].next_free;
    } else {
      if (slots_.size() > kIndexMask) return 0;
      slots_.push_back(Slot{nullptr, 1, kNone});
      i = static_cast<uint32_t>(slots_.size() - 1);
    }
    slots_[i].ptr = p;
    slots_[i].mark = mark;
    ++live_;
    return static_cast<double>((uint64_t{slots_[i].gen} << kIndexBits) | i);
  }

  // The object behind a live token, or nullptr; `marked` (if given) tells
  // whether the entry is marked.
  T* Get(double token, bool* marked = nullptr) const {
    const Slot* s = Find(token);
    if (!s) return nullptr;
    if (marked) *marked = s->mark;
    return s->ptr;
  }

  // The object behind a live token, or nullptr; clears the entry's mark.
  T* GetClearingMark(double token) {
    Slot* s = const_cast<Slot*>(Find(token));
    if (!s) return nullptr;
    s->mark = false;
    return s->ptr;
  }

  // Removes a live token and returns its object (nullptr if not live), and
  // whether its mark was still set. The token and every copy of it are dead
  // from here on.
  T* Take(double token, bool* marked = nullptr) {
    Slot* s = const_cast<Slot*>(Find(token));
    if (!s) return nullptr;
    if (marked) *marked = s->mark;
    T* p = s->ptr;
    s->ptr = nullptr;
    s->gen = s->gen + 1 == kGenLimit ? 1 : s->gen + 1;
    const auto i = static_cast<uint32_t>(s - slots_.data());
    s->next_free = free_;
    free_ = i;
    --live_;
    return p;
  }

  // Empties the table, handing every live object to `fn` (teardown).
  template <typename Fn>
  void Clear(Fn&& fn) {
    std::vector<Slot> slots;
    slots.swap(slots_);
    free_ = kNone;
    live_ = 0;
    for (Slot& s : slots)
      if (s.ptr) fn(s.ptr);
  }

  size_t live() const { return live_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Slot {
    T* ptr;
    uint32_t gen;
    union {
      uint32_t next_free;  // free slots
      uint32_t mark;       // live slots
    };
  };

  const Slot* Find(double token) const {
    // Rejects NaN, negatives, fractions and anything past 2^53 before converting.
    if (!(token >= 1 && token < 9007199254740992.0)) return nullptr;
    const auto u = static_cast<uint64_t>(token);
    if (static_cast<double>(u) != token) return nullptr;
    const uint64_t i = u & kIndexMask;
    if (i >= slots_.size()) return nullptr;
    const Slot& s = slots_[i];
    return s.ptr && s.gen == (u >> kIndexBits) ? &s : nullptr;
  }

  std::vector<Slot> slots_;
  uint32_t free_ = kNone;
  size_t live_ = 0;
};

}  // namespace dmabuf::addon
