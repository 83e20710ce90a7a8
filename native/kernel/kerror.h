// Errors of the real-kernel backend: every failure carries the kernel's errno
// (negative, as the kernel returns it), the ioctl or syscall that failed, and a
// message for humans. Functions return KResult<T>; nothing here throws.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace dmabuf::kernel {

struct KError {
  int err = 0;          // negative errno, e.g. -EINVAL
  const char* op = "";  // static string: "DMA_HEAP_IOCTL_ALLOC", "open", ...
  std::string msg;      // what we were doing and, where we know it, why it failed

  // Symbolic name of -err ("EINVAL"), or "E?" for an unknown value.
  const char* code() const;
  // "DMA_HEAP_IOCTL_ALLOC: EINVAL (Invalid argument): <msg>"
  std::string describe() const;
};

// Builds a KError from a negative errno.
KError kerror(int neg_errno, const char* op, std::string msg = {});
// -errno, for `const int e = neg_errno();` right after the failing call (build
// the message afterwards: formatting may clobber errno).
inline int neg_errno() { return errno > 0 ? -errno : -EIO; }
// printf-style message helper for the two above.
std::string kfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// A value or a KError (std::expected is C++23; we build with C++20).
template <typename T>
class [[nodiscard]] KResult {
 public:
  KResult(T v) : v_(std::in_place_index<0>, std::move(v)) {}
  KResult(KError e) : v_(std::in_place_index<1>, std::move(e)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // 0 on success, the negative errno otherwise.
  int err() const { return ok() ? 0 : std::get<1>(v_).err; }

  // Accessing the wrong alternative is a programming error: abort, like value()
  // of an empty std::optional under -fno-exceptions.
  T& value() & { check(true); return std::get<0>(v_); }
  const T& value() const& { check(true); return std::get<0>(v_); }
  T&& value() && { check(true); return std::get<0>(std::move(v_)); }
  const KError& error() const { check(false); return std::get<1>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  void check(bool want_value) const {
    if (ok() != want_value) abort();
  }
  std::variant<T, KError> v_;
};

template <>
class [[nodiscard]] KResult<void> {
 public:
  KResult() = default;
  KResult(KError e) : e_(std::move(e)), failed_(true) {}
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  int err() const { return failed_ ? e_.err : 0; }
  const KError& error() const {
    if (!failed_) abort();
    return e_;
  }

 private:
  KError e_;
  bool failed_ = false;
};

using KStatus = KResult<void>;

}  // namespace dmabuf::kernel
