// What every binding file needs to keep failures in one shape across the
// boundary (errors.h builds it): function registration behind a guard that
// turns std::bad_alloc into ENOMEM, and kernel-backend failures (KError).
#pragma once

#include <napi.h>

#include <cerrno>
#include <initializer_list>
#include <new>
#include <string>

#include "addon/errors.h"
#include "kernel/kerror.h"

namespace dmabuf::addon {

using BindingFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct NamedFn {
  const char* name;
  BindingFn fn;
};

// Exports each function under its name. A `new` (or a container growing) that
// fails inside one throws std::bad_alloc; the guard makes it a DmaBufError
// ENOMEM instead of node-addon-api's plain Error("std::bad_alloc").
inline void ExportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<NamedFn> fns) {
  for (const NamedFn& f : fns) {
    const BindingFn fn = f.fn;
    const char* name = f.name;
    exports.Set(name, Napi::Function::New(
                          env,
                          [fn, name](const Napi::CallbackInfo& info) -> Napi::Value {
                            try {
                              return fn(info);
                            } catch (const std::bad_alloc&) {
                              throw ErrnoError(info.Env(), -ENOMEM, nullptr,
                                               std::string("out of memory (") + name + ")");
                            }
                          },
                          name));
  }
}

// A kernel-backend failure: the kernel's errno, the ioctl or syscall that
// failed, and the backend's message.
inline Napi::Error KernelError(Napi::Env env, const kernel::KError& e) {
  return ErrnoError(env, e.err, e.op && *e.op ? e.op : nullptr,
                    e.msg.empty() ? std::string(e.op) + " failed" : e.msg);
}

}  // namespace dmabuf::addon
