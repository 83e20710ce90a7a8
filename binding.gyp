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
        "native/core/array.cc",
        "native/core/chain.cc",
        "native/core/cma.cc",
        "native/core/dma_buf.cc",
        "native/core/dma_buf_attach.cc",
        "native/core/dma_buf_fdinfo.cc",
        "native/core/dma_buf_ioctl.cc",
        "native/core/dma_buf_mmap.cc",
        "native/core/dma_buf_resv.cc",
        "native/core/fault_inject.cc",
        "native/core/fence.cc",
        "native/core/fence_cache.cc",
        "native/core/fence_misc.cc",
        "native/core/fence_wait.cc",
        "native/core/heap.cc",
        "native/core/heap_cma.cc",
        "native/core/heap_protected.cc",
        "native/core/heap_system.cc",
        "native/core/irq_work.cc",
        "native/core/issuer.cc",
        "native/core/issuer_abi.cc",
        "native/core/issuer_names.cc",
        "native/core/mem_encrypt.cc",
        "native/core/page_alloc.cc",
        "native/core/platform.cc",
        "native/core/rcu.cc",
        "native/core/resv.cc",
        "native/core/sw_sync.cc",
        "native/core/sync_file.cc",
        "native/core/unwrap.cc",
        "native/core/vfio_dmabuf.cc",
        "native/core/warn.cc",
        "native/core/ww_mutex.cc",
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
        "native/core",
        "native",
        "native/bench",
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
