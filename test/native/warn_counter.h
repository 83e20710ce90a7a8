// Counts dmabuf warnings (WARN()) for the lifetime of the object, so tests can
// assert that a misuse warned -- and keep the expected warnings off stderr.
#pragma once

#include <atomic>

#include "core/base/warn.h"

class WarnCounter {
 public:
  WarnCounter() { prev_ = dmabuf::set_warn_handler(&WarnCounter::Record, this); }
  ~WarnCounter() { dmabuf::set_warn_handler(prev_, nullptr); }
  WarnCounter(const WarnCounter&) = delete;
  WarnCounter& operator=(const WarnCounter&) = delete;

  int count() const { return n_.load(); }
  void reset() { n_ = 0; }

 private:
  static void Record(const char*, void* self) { static_cast<WarnCounter*>(self)->n_++; }
  dmabuf::WarnHandler prev_;
  std::atomic<int> n_{0};
};
