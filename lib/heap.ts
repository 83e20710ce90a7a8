// dma-buf heaps and buffers: /dev/dma_heap and the dma-buf fd, emulated
// (native/core, the default platform: Linux 7.1 on x86-64) or real
// (native/kernel, /dev/dma_heap). TypeScript validates types and ranges; the
// UAPI's own checks (fd_flags, heap_flags, len, name length, sync flags) are
// the C++'s, so values pass through and errnos come back as DmaBufError.
import { binding as rawBinding, type External } from './binding';
import { wrapDmaBuf, type DmaBuf } from './dma_buf';
import { DmaBufError, invalidArgType, outOfRange, toU64 } from './errors';
import { check, isKErr, toChoice, toOpts, type KErr } from './heap_util';

interface HeapBinding {
  heapList(kernel: boolean, platform?: External): RawHeapInfo[] | KErr;
  heapOpen(name: string, kernel: boolean, platform?: External): External | number | KErr;
  heapDispose(h: External): void;
  heapAlloc(h: External, len: bigint, fdFlags: number, heapFlags: bigint): External | number | KErr;
}
const binding = rawBinding as unknown as HeapBinding;

/** @internal The raw heap list of a platform (platform.ts). */
export function rawHeapList(platform: External): RawHeapInfo[] {
  return check(binding.heapList(false, platform), 'dma_heap_list', 'listing heaps');
}
/** @internal Opens an emulated heap of a platform (platform.ts). */
export function openPlatformHeap(name: string, platform: External): Heap {
  const h = check(binding.heapOpen(name, false, platform), 'open', `no heap named '${name}'`);
  return new Heap(kHeap, h as External, name, 'emulated');
}

/** @internal */
export interface RawHeapInfo {
  name: string;
  path?: string;
  kind?: string;
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
  /** Emulated heaps: 'system', 'cc_shared', 'cma', 'protected' or 'custom'. */
  kind?: string;
  contiguous?: boolean;
  cpuAccess?: boolean;
  ccShared?: boolean;
}

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
    for (const h of check(binding.heapList(false), 'dma_heap_list', 'listing heaps')) {
      out.push({ ...h, backend: 'emulated' });
    }
  }
  if (backend !== 'emulated') {
    for (const h of check(binding.heapList(true), 'opendir', 'listing /dev/dma_heap')) {
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
  if (backend === 'kernel' || backend === 'auto') {
    const r = binding.heapOpen(name, true);
    if (!(typeof r === 'number' || isKErr(r))) return new Heap(kHeap, r as External, name, 'kernel');
    if (backend === 'kernel') check(r, 'open', `opening /dev/dma_heap/${name}`);
  }
  const h = check(binding.heapOpen(name, false), 'open', `no heap named '${name}'`);
  return new Heap(kHeap, h as External, name, 'emulated');
}

export interface AllocOptions {
  /** fd_flags: O_CLOEXEC | O_ACCMODE bits; default O_RDWR | O_CLOEXEC. Other bits: EINVAL. */
  fdFlags?: number;
  /** heap_flags: none are defined; any bit is EINVAL. */
  heapFlags?: bigint;
}

/** An open dma-buf heap. */
export class Heap implements Disposable {
  readonly name: string;
  readonly backend: HeapBackend;
  #h: External | null;

  /** @internal use openHeap() */
  constructor(token: symbol, h: External, name: string, backend: HeapBackend) {
    if (token !== kHeap) throw new TypeError('Heap objects come from openHeap()');
    this.#h = h;
    this.name = name;
    this.backend = backend;
  }

  #handle(): External {
    if (!this.#h) throw new DmaBufError('EBADF', 'heap is closed', 'ioctl');
    return this.#h;
  }

  /** DMA_HEAP_IOCTL_ALLOC: a new buffer of `len` bytes (rounded up to a page). */
  alloc(len: number | bigint, opts?: AllocOptions): DmaBuf {
    const n = toU64('len', len);
    const o = toOpts('opts', opts);
    const fdFlags = toFdFlags('opts.fdFlags', o.fdFlags);
    let heapFlags = 0n;
    if (o.heapFlags !== undefined) heapFlags = toU64('opts.heapFlags', o.heapFlags);
    const r = binding.heapAlloc(this.#handle(), n, fdFlags, heapFlags);
    const b = check(r, 'DMA_HEAP_IOCTL_ALLOC', `allocating ${n} bytes from heap '${this.name}'`);
    return wrapDmaBuf(b as External, this.backend);
  }

  /** Closes the heap node. Idempotent; buffers stay valid. */
  close(): void {
    if (this.#h) {
      binding.heapDispose(this.#h);
      this.#h = null;
    }
  }
  dispose(): void {
    this.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}
