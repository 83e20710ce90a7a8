#include "kernel/fdinfo.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace dmabuf::kernel {

const std::string* FdInfo::find(std::string_view key) const {
  for (auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

std::optional<uint64_t> FdInfo::number(std::string_view key, int base) const {
  const std::string* v = find(key);
  if (!v || v->empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  unsigned long long n = strtoull(v->c_str(), &end, base);
  if (errno || end == v->c_str() || *end != '\0' || (*v)[0] == '-') return std::nullopt;
  return n;
}

std::optional<std::string> FdInfo::access_mode() const {
  auto flags = number("flags", 8);
  if (!flags) return std::nullopt;
  switch (*flags & O_ACCMODE) {
    case O_RDONLY: return "r";
    case O_WRONLY: return "w";
    default: return "rw";
  }
}

FdInfo parse_fdinfo(std::string_view text) {
  FdInfo info;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == '\t' || value.front() == ' ')) value.remove_prefix(1);
    info.entries.emplace_back(std::string(key), std::string(value));
  }
  return info;
}

KResult<FdInfo> read_fdinfo(int fd) {
  if (fd < 0) return kerror(-EBADF, "open", kfmt("fdinfo of fd %d", fd));
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int pfd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (pfd < 0) {
    int e = neg_errno();
    if (e == -ENOENT) e = -EBADF;  // no such fd in this process
    return kerror(e, "open", path);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(pfd, buf, sizeof buf);
    if (n < 0) {
      const int e = neg_errno();
      if (e == -EINTR) continue;
      ::close(pfd);
      return kerror(e, "read", path);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(pfd);
  return parse_fdinfo(text);
}

}  // namespace dmabuf::kernel
