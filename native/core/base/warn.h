// WARN(): the kernel prints a warning and carries on. So do we, through a
// replaceable sink so tests and the addon can observe warnings.
#pragma once

#include <cstdint>

namespace dmabuf {

using WarnHandler = void (*)(const char* message, void* data);

// Formats and reports one warning. Thread-safe; never throws.
void warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Replaces the sink (nullptr restores the default, which prints to stderr).
// Returns the previous handler.
WarnHandler set_warn_handler(WarnHandler handler, void* data);

// Warnings reported since process start.
uint64_t warn_count();

}  // namespace dmabuf
