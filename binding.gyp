{
  "targets": [
    {
      "target_name": "dmabuf",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/attach_binding.cc",
        "native/addon/bench_binding.cc",
        "native/addon/containers_binding.cc",
        "native/addon/dma_buf_binding.cc",
        "native/addon/env_binding.cc",
        "native/addon/env_state.cc",
        "native/addon/errors.cc",
        "native/addon/export_registry.cc",
        "native/addon/fence_binding.cc",
        "native/addon/heap_binding.cc",
        "native/addon/issuer_binding.cc",
        "native/addon/platform_binding.cc",
        "native/addon/resv_binding.cc",
        "native/addon/sync_file_binding.cc",
        "native/addon/udmabuf_binding.cc",
        "native/bench/bench.cc",
        "native/bench/containers_bench.cc",
        "native/bench/fence_bench.cc",
        "native/bench/heaps_bench.cc",
        "native/bench/issuer_bench.cc",
        "native/bench/kernel_bench.cc",
        "native/core/base/fault_inject.cc",
        "native/core/base/interrupt.cc",
        "native/core/base/irq_work.cc",
        "native/core/base/rcu.cc",
        "native/core/base/warn.cc",
        "native/core/base/ww_mutex.cc",
        "native/core/buffer/attachment.cc",
        "native/core/buffer/dma_buf.cc",
        "native/core/buffer/dma_buf_fdinfo.cc",
        "native/core/buffer/dma_buf_ioctl.cc",
        "native/core/buffer/dma_buf_mmap.cc",
        "native/core/buffer/dma_buf_resv.cc",
        "native/core/buffer/vfio_dmabuf.cc",
        "native/core/fence/array.cc",
        "native/core/fence/chain.cc",
        "native/core/fence/fence.cc",
        "native/core/fence/fence_cache.cc",
        "native/core/fence/fence_misc.cc",
        "native/core/fence/fence_wait.cc",
        "native/core/fence/unwrap.cc",
        "native/core/fence/user_fence.cc",
        "native/core/heaps/heap.cc",
        "native/core/heaps/heap_cma.cc",
        "native/core/heaps/heap_protected.cc",
        "native/core/heaps/heap_system.cc",
        "native/core/issuer/issuer.cc",
        "native/core/issuer/issuer_abi.cc",
        "native/core/issuer/issuer_names.cc",
        "native/core/mm/cma_area.cc",
        "native/core/mm/mem_encrypt.cc",
        "native/core/mm/page_alloc.cc",
        "native/core/mm/platform.cc",
        "native/core/resv/resv.cc",
        "native/core/sync/sw_sync.cc",
        "native/core/sync/sync_file.cc",
        "native/kernel/dma_buf.cc",
        "native/kernel/fd.cc",
        "native/kernel/fdinfo.cc",
        "native/kernel/fence_export.cc",
        "native/kernel/fence_watcher.cc",
        "native/kernel/heap.cc",
        "native/kernel/kernel_fence.cc",
        "native/kernel/kerror.cc",
        "native/kernel/sw_sync.cc",
        "native/kernel/sync_file.cc",
        "native/kernel/udmabuf.cc"
      ],
      "include_dirs": [
        "native",
        "native/include",
        "<!@(pkg-config --cflags-only-I liburcu-bp | sed s/-I//g)"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc": [
        "-std=c++20",
        "-O2",
        "-fno-extern-tls-init",
        "-Wall",
        "-Wextra",
        "-Wno-missing-field-initializers"
      ],
      "cflags_cc!": [
        "-std=gnu++17",
        "-std=c++17"
      ],
      "libraries": [
        "<!@(pkg-config --libs liburcu-bp)",
        "-ldl",
        "-Wl,-z,nodelete",
        "-Wl,--exclude-libs,ALL"
      ]
    }
  ]
}
