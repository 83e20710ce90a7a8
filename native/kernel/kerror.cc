#include "kernel/kerror.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace dmabuf::kernel {

const char* KError::code() const {
  const char* name = err < 0 ? strerrorname_np(-err) : nullptr;
  return name ? name : "E?";
}

std::string KError::describe() const {
  std::string s = op;
  s += ": ";
  s += code();
  s += " (";
  s += err < 0 ? strerror(-err) : "no error";
  s += ")";
  if (!msg.empty()) {
    s += ": ";
    s += msg;
  }
  return s;
}

KError kerror(int neg_errno, const char* op, std::string msg) {
  return KError{neg_errno, op, std::move(msg)};
}

std::string kfmt(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

}  // namespace dmabuf::kernel
