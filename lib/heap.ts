// dma-buf heaps: listHeaps(), openHeap() and Heap.alloc() over /dev/dma_heap,
// emulated (native/core, the default platform: Linux 7.1 on x86-64) or real
// (native/kernel). The buffers alloc() returns are DmaBufs (lib/dma_buf.ts,
// attachments in lib/attachment.ts); emulated platforms with heaps of their
// own are in lib/platform.ts. TypeScript validates types and ranges; the
// UAPI's own checks (fd_flags, heap_flags, len) are the C++'s, so values pass
// through and errnos come back as DmaBufError.
import { wrapDmaBuf, type DmaBuf } from './dma_buf';
import { DmaBufError } from './errors';
import { invalidArgType, outOfRange, toU64 } from './internal/args';
import { binding, type External } from './internal/binding';
import { toChoice, toOpts } from './internal/options';

/** @internal The raw heap list of a platform (platform.ts). */
export function rawHeapList(platform: External): RawHeapInfo[] {
  return binding.heapList(false, platform);
}
/** @internal Opens an emulated heap of a platform (platform.ts). */
export function openPlatformHeap(name: string, platform: External): Heap {
  return new Heap(kHeap, binding.heapOpen(name, false, platform), name, 'emulated');
}

/** @internal */
export interface RawHeapInfo {
  name: string;
  path?: string;
  kind?: HeapKind;
  contiguous?: boolean;
  cpuAccess?: boolean;
  ccShared?: boolean;
}

export type HeapBackend = 'emulated' | 'kernel';

/** One entry of `ls /dev/dma_heap`. Emulated heaps also say what they are. */
export interface HeapInfo {
  name: string;
  backend: HeapBackend;
  /** Kernel heaps: the device node. */
  path?: string;
  /** Emulated heaps: what the heap is (native/core/heaps: heap_kind_name). */
  kind?: HeapKind;
  contiguous?: boolean;
  cpuAccess?: boolean;
  ccShared?: boolean;
}

/** What an emulated heap is: its allocator, as heap_kind_name() names it. */
export type HeapKind = 'system' | 'system_cc_shared' | 'cma' | 'protected' | 'custom';

/** O_RDWR | O_CLOEXEC: what userspace allocators pass as fd_flags. */
export const DEFAULT_FD_FLAGS = 0o2000002;

/** fd_flags: a u32 (the UAPI checks the bits). */
export function toFdFlags(name: string, v: unknown): number {
  if (v === undefined) return DEFAULT_FD_FLAGS;
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw outOfRange(name, 'an integer >= 0 and <= 4294967295', v);
  return v;
}

/** The heaps under /dev/dma_heap (kernel), of the emulated platform, or both. Sorted by name per backend. */
export function listHeaps(opts?: { backend?: 'emulated' | 'kernel' | 'all' }): HeapInfo[] {
  const o = toOpts('opts', opts);
  const backend = toChoice('opts.backend', o.backend, ['emulated', 'kernel', 'all'] as const, 'emulated');
  const out: HeapInfo[] = [];
  if (backend !== 'kernel') {
    for (const h of binding.heapList(false)) {
      out.push({ ...h, backend: 'emulated' });
    }
  }
  if (backend !== 'emulated') {
    for (const h of binding.heapList(true)) {
      out.push({ name: h.name, backend: 'kernel', path: h.path ?? '' });
    }
  }
  return out;
}

const kHeap = Symbol('dmabuf.heap');

/**
 * Opens a heap: open("/dev/dma_heap/<name>"). 'kernel' uses the real node
 * (ENOENT without it), 'emulated' the default emulated platform, 'auto' the
 * kernel's node when it exists and opens, else the emulated heap.
 */
export function openHeap(name: string, opts?: { backend?: 'emulated' | 'kernel' | 'auto' }): Heap {
  if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
  const o = toOpts('opts', opts);
  const backend = toChoice('opts.backend', o.backend, ['emulated', 'kernel', 'auto'] as const, 'emulated');
  if (backend === 'kernel') return new Heap(kHeap, binding.heapOpen(name, true), name, 'kernel');
  if (backend === 'auto') {
    try {
      return new Heap(kHeap, binding.heapOpen(name, true), name, 'kernel');
    } catch (e) {
      if (!(e instanceof DmaBufError)) throw e; // no such kernel heap: the emulated one
    }
  }
  return new Heap(kHeap, binding.heapOpen(name, false), name, 'emulated');
}

export interface AllocOptions {
  /** fd_flags: O_CLOEXEC | O_ACCMODE bits; default O_RDWR | O_CLOEXEC. Other bits: EINVAL. */
  fdFlags?: number;
  /** heap_flags: none are defined; any bit is EINVAL. */
  heapFlags?: bigint;
}

// Brand check: the handle is read from the private slot of a real Heap;
// anything else is a TypeError (ERR_INVALID_ARG_TYPE), never an EBADF.
let heapSlot!: (v: unknown) => External | null;
function heapHandle(v: unknown): External {
  const h = heapSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'heap is closed', 'ioctl');
  return h;
}

/** An open dma-buf heap. */
export class Heap implements Disposable {
  readonly name: string;
  readonly backend: HeapBackend;
  #h: External | null;
  static {
    heapSlot = (v) => {
      if (typeof v !== 'object' || v === null || !(#h in v)) throw invalidArgType('this', 'an instance of Heap', v);
      return (v as Heap).#h;
    };
  }

  /** @internal use openHeap() */
  constructor(token: symbol, h: External, name: string, backend: HeapBackend) {
    if (token !== kHeap) throw new TypeError('Heap objects come from openHeap()');
    this.#h = h;
    this.name = name;
    this.backend = backend;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return heapSlot(this) === null;
  }

  /** DMA_HEAP_IOCTL_ALLOC: a new buffer of `len` bytes (rounded up to a page). */
  alloc(len: number | bigint, opts?: AllocOptions): DmaBuf {
    const h = heapHandle(this);
    const n = toU64('len', len);
    const o = toOpts('opts', opts);
    const fdFlags = toFdFlags('opts.fdFlags', o.fdFlags);
    let heapFlags = 0n;
    if (o.heapFlags !== undefined) heapFlags = toU64('opts.heapFlags', o.heapFlags);
    return wrapDmaBuf(binding.heapAlloc(h, n, fdFlags, heapFlags));
  }

  /** Closes the heap node. Idempotent; buffers stay valid. */
  close(): void {
    const h = heapSlot(this);
    if (h) {
      binding.heapDispose(h);
      this.#h = null;
    }
  }
  dispose(): void {
    Heap.prototype.close.call(this);
  }
  [Symbol.dispose](): void {
    Heap.prototype.close.call(this);
  }
}
