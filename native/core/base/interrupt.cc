#include "core/base/interrupt.h"

namespace dmabuf {
namespace {

struct ThreadCheck {
  InterruptCheck check;
  void* data;
};
thread_local ThreadCheck t_check{nullptr, nullptr};

}  // namespace

void set_interrupt_check(InterruptCheck check, void* data) { t_check = {check, data}; }

bool interrupt_check_installed() { return t_check.check != nullptr; }

bool interrupt_pending() { return t_check.check && t_check.check(t_check.data); }

}  // namespace dmabuf
