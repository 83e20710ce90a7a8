// /proc/<pid>/fdinfo/<fd>: "key:\tvalue" lines. For a dma-buf the generic lines
// (pos, flags in octal, mnt_id, ino) come first, then dma_buf_show_fdinfo's
// size, count, exp_name and (once set) name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernel/kerror.h"

namespace dmabuf::kernel {

struct FdInfo {
  // In the kernel's order; a key may repeat (lock: lines).
  std::vector<std::pair<std::string, std::string>> entries;

  // The first value for `key`, or nullptr.
  const std::string* find(std::string_view key) const;
  // The first value for `key` as an unsigned number in `base` (flags is octal);
  // nullopt if absent or not entirely a number.
  std::optional<uint64_t> number(std::string_view key, int base = 10) const;
  // "r", "w" or "rw" from flags' O_ACCMODE bits; nullopt without flags.
  std::optional<std::string> access_mode() const;
};

// Parses fdinfo text: each line is split at its first ':' and the value loses
// the whitespace after the colon and the line end. Lines without ':' are skipped.
FdInfo parse_fdinfo(std::string_view text);

// Reads and parses /proc/self/fdinfo/<fd> (EBADF for a closed fd).
KResult<FdInfo> read_fdinfo(int fd);

}  // namespace dmabuf::kernel
