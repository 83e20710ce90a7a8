// Handles that cross worker_threads: exportHandle() parks one reference here
// under a fresh 64-bit id (one counter for every kind, never an address), and
// importHandle() takes it back, once, in any environment. JS can pass any
// bigint: an id is only ever looked up, never dereferenced.
//
// Lifetime: an export that is never imported must not live for ever. When the
// environment that exported it ends, it stays importable for kOrphanGraceNs
// (long enough for a worker's last postMessage to be read) and is dropped at
// the next export or import after that; when the main environment ends (the
// process is exiting) every export left is dropped.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/base/monotonic.h"

namespace dmabuf::addon {

// The part every registry shares, so that environment teardown reaches all of them.
class ExportRegistryBase {
 public:
  static constexpr int64_t kOrphanGraceNs = 10'000'000'000;  // 10 s

  // Environment teardown (EnvState's cleanup hook): `owner`'s unimported
  // exports become orphans, or are dropped at once when `everything` is set.
  static void EnvGone(const void* owner, bool everything);

 protected:
  ExportRegistryBase();
  static uint64_t NextId();
  virtual void Orphan(const void* owner, bool everything) = 0;
  virtual ~ExportRegistryBase() = default;
};

template <typename T, void (*Put)(T*)>
class ExportRegistry final : public ExportRegistryBase {
 public:
  // Parks `ref` (one reference, adopted) for `owner`'s environment; returns its id.
  uint64_t Export(T* ref, const void* owner) {
    std::vector<T*> expired;
    uint64_t id = NextId();
    {
      std::lock_guard<std::mutex> g(mu_);
      Sweep(&expired);
      entries_.emplace(id, Entry{ref, owner, 0});
    }
    for (T* p : expired) Put(p);
    return id;
  }

  enum class Result { kOk, kUnknown, kRefused };

  // Takes the reference parked under `id` (*out), unless `accept` refuses it:
  // then it stays parked, so a retry with the right type can still succeed.
  Result Import(uint64_t id, T** out, bool (*accept)(T*) = nullptr) {
    std::vector<T*> expired;
    Result r = Result::kUnknown;
    {
      std::lock_guard<std::mutex> g(mu_);
      Sweep(&expired);
      auto it = entries_.find(id);
      if (it != entries_.end()) {
        if (accept && !accept(it->second.ref)) {
          r = Result::kRefused;
        } else {
          *out = it->second.ref;
          if (it->second.deadline) --orphans_;
          entries_.erase(it);
          r = Result::kOk;
        }
      }
    }
    for (T* p : expired) Put(p);
    return r;
  }

  size_t size() {
    std::lock_guard<std::mutex> g(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    T* ref;
    const void* owner;  // null once orphaned
    int64_t deadline;   // 0 while the owner lives
  };

  void Orphan(const void* owner, bool everything) override {
    std::vector<T*> dropped;
    {
      std::lock_guard<std::mutex> g(mu_);
      const int64_t deadline = monotonic_ns() + kOrphanGraceNs;
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (everything) {
          dropped.push_back(it->second.ref);
          it = entries_.erase(it);
          continue;
        }
        if (it->second.owner == owner && !it->second.deadline) {
          it->second.owner = nullptr;
          it->second.deadline = deadline;
          ++orphans_;
        }
        ++it;
      }
      if (everything) orphans_ = 0;
    }
    for (T* p : dropped) Put(p);
  }

  // Under mu_: moves expired orphans to *out (put outside the lock).
  void Sweep(std::vector<T*>* out) {
    if (orphans_ == 0) return;
    const int64_t now = monotonic_ns();
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.deadline && it->second.deadline <= now) {
        out->push_back(it->second.ref);
        --orphans_;
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;
  size_t orphans_ = 0;
};

}  // namespace dmabuf::addon
