// Open fds of this process, for tests that prove nothing leaks.
#pragma once

#include <dirent.h>

namespace dmabuf::test {

inline int open_fd_count() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n - 1;  // the DIR's own fd
}

}  // namespace dmabuf::test
