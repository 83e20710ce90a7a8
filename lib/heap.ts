// dma-buf heaps and buffers: /dev/dma_heap and the dma-buf fd, emulated
// (native/core, the default platform: Linux 7.1 on x86-64) or real
// (native/kernel, /dev/dma_heap). TypeScript validates types and ranges; the
// UAPI's own checks (fd_flags, heap_flags, len, name length, sync flags) are
// the C++'s, so values pass through and errnos come back as DmaBufError.
import { binding as rawBinding, type External } from './binding';
import { DmaBufError, errnoNumber, invalidArgType, invalidArgValue, outOfRange, toU64 } from './errors';

/** A kernel-backend failure: [negative errno, op, message]. */
type KErr = [number, string, string];

interface HeapBinding {
  heapList(kernel: boolean, platform?: External): RawHeapInfo[] | KErr;
  heapOpen(name: string, kernel: boolean, platform?: External): External | number | KErr;
  platformCreate(kernelVersion: string, arch: string, memEncrypt: boolean, cmaBytes: bigint): External | number;
  platformDispose(p: External): void;
  platformSetFault(p: External | undefined, site: string, nth: bigint, times: bigint, error: number): number;
  heapDispose(h: External): void;
  heapAlloc(h: External, len: bigint, fdFlags: number, heapFlags: bigint): External | number | KErr;
  bufIsKernel(b: External): boolean;
  bufFd(b: External): number;
  bufSize(b: External): bigint | number | KErr;
  bufFdinfo(b: External): [string, string][] | number | KErr;
  bufSetName(b: External, name: string): number | KErr;
  bufSync(b: External, flags: bigint): number | KErr;
  bufMap(b: External): ArrayBuffer | number | KErr;
  bufUnmap(b: External, ab?: ArrayBuffer): void;
  bufClose(b: External, ab?: ArrayBuffer): number;
  bufDispose(b: External): void;
}
const binding = rawBinding as unknown as HeapBinding;

interface RawHeapInfo {
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

export const DMA_BUF_SYNC_READ = 1n;
export const DMA_BUF_SYNC_WRITE = 2n;
export const DMA_BUF_SYNC_RW = 3n;
export const DMA_BUF_SYNC_START = 0n;
export const DMA_BUF_SYNC_END = 4n;

export type CpuAccessDir = 'read' | 'write' | 'readwrite';

function isKErr(r: unknown): r is KErr {
  return Array.isArray(r) && r.length === 3 && typeof r[0] === 'number' && typeof r[1] === 'string';
}

/** Turns a native result into a value or a thrown DmaBufError. */
function check<T>(r: T | number | KErr, op: string, what: string): T {
  if (typeof r === 'number' && r < 0) throw new DmaBufError(r, what, op);
  if (isKErr(r)) throw new DmaBufError(r[0], r[2] || what, r[1] || op);
  return r as T;
}

function toBackend<T extends string>(name: string, v: unknown, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw invalidArgType(name, 'of type string', v);
  if (!(allowed as readonly string[]).includes(v)) throw invalidArgValue(name, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  return v as T;
}

function toOpts(name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object') throw invalidArgType(name, 'of type object', v);
  return v as Record<string, unknown>;
}

/** The heaps under /dev/dma_heap (kernel), of the emulated platform, or both. Sorted by name per backend. */
export function listHeaps(opts?: { backend?: 'emulated' | 'kernel' | 'all' }): HeapInfo[] {
  const o = toOpts('opts', opts);
  const backend = toBackend('opts.backend', o.backend, ['emulated', 'kernel', 'all'] as const, 'emulated');
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
const kBuf = Symbol('dmabuf.buf');

/**
 * Opens a heap: open("/dev/dma_heap/<name>"). 'kernel' uses the real node
 * (ENOENT without it), 'emulated' the default emulated platform, 'auto' the
 * kernel's node when it exists and opens, else the emulated heap.
 */
export function openHeap(name: string, opts?: { backend?: 'emulated' | 'kernel' | 'auto' }): Heap {
  if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
  const o = toOpts('opts', opts);
  const backend = toBackend('opts.backend', o.backend, ['emulated', 'kernel', 'auto'] as const, 'emulated');
  if (backend === 'kernel' || backend === 'auto') {
    const r = binding.heapOpen(name, true);
    if (!(typeof r === 'number' || isKErr(r))) return new Heap(kHeap, r as External, name, 'kernel');
    if (backend === 'kernel') check(r, 'open', `opening /dev/dma_heap/${name}`);
  }
  const h = check(binding.heapOpen(name, false), 'open', `no heap named '${name}'`);
  return new Heap(kHeap, h as External, name, 'emulated');
}

const kPlatform = Symbol('dmabuf.platform');

export interface PlatformOptions {
  /** Emulated kernel version, e.g. '7.1', '6.12', '6.17' (default '7.1'). */
  kernelVersion?: string;
  /** cc_platform_has(CC_ATTR_MEM_ENCRYPT): a confidential-computing guest (default false). */
  memEncrypt?: boolean;
  /** CMA area size in bytes; 0 (default): no CMA heap. */
  cmaSize?: number | bigint;
  /** uname -m spelling or alias: 'x86_64' (default), 'aarch64'/'arm64', 'armv7l', 'riscv64', 's390x', 'ppc64le'. */
  arch?: string;
}

export interface FaultOptions {
  /** Fail calls nth .. nth+times-1 since arming (1-based); 0 disarms. */
  nth: number;
  /** How many calls fail (default 1; 0: every call from nth on). */
  times?: number;
  /** Errno to fail with ('ENOMEM' or -12); default: the site's own. */
  error?: string | number;
}

/**
 * An emulated machine with its own heaps: kernel version, architecture, memory
 * encryption (system_cc_shared appears only with memEncrypt on an arch whose
 * heap can call set_memory_decrypted) and CMA. Buffers keep it alive.
 */
export class Platform implements Disposable {
  #p: External | null;

  /** @internal use createPlatform() */
  constructor(token: symbol, p: External) {
    if (token !== kPlatform) throw new TypeError('Platform objects come from createPlatform()');
    this.#p = p;
  }

  #handle(): External {
    if (!this.#p) throw new DmaBufError('EBADF', 'platform is disposed', 'platform');
    return this.#p;
  }

  listHeaps(): HeapInfo[] {
    return check(binding.heapList(false, this.#handle()), 'dma_heap_list', 'listing heaps').map((h) => ({
      ...h,
      backend: 'emulated' as const,
    }));
  }

  openHeap(name: string): Heap {
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
    const h = check(binding.heapOpen(name, false, this.#handle()), 'open', `no heap named '${name}'`);
    return new Heap(kHeap, h as External, name, 'emulated');
  }

  /** Arms a fault point: 'alloc_pages', 'cma_alloc', 'set_memory_decrypted', 'set_memory_encrypted', 'fatal_signal_pending', 'dma_buf_export', 'dma_buf_fd'. */
  setFault(site: string, opts: FaultOptions): void {
    if (typeof site !== 'string') throw invalidArgType('site', 'of type string', site);
    const o = toOpts('opts', opts);
    const nth = toU64('opts.nth', o.nth);
    const times = o.times === undefined ? 1n : toU64('opts.times', o.times);
    let error = 0;
    if (typeof o.error === 'string') {
      const n = errnoNumber(o.error);
      if (n === undefined) throw invalidArgValue('opts.error', 'must be an errno name', o.error);
      error = n;
    } else if (typeof o.error === 'number') {
      if (!Number.isInteger(o.error)) throw outOfRange('opts.error', 'an integer errno', o.error);
      error = -Math.abs(o.error);
    } else if (o.error !== undefined) {
      throw invalidArgType('opts.error', 'of type string or number', o.error);
    }
    check(binding.platformSetFault(this.#handle(), site, nth, times, error), 'fault_inject', `arming fault '${site}'`);
  }

  dispose(): void {
    if (this.#p) {
      binding.platformDispose(this.#p);
      this.#p = null;
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** A new emulated platform (defaults: Linux 7.1, x86_64, no memory encryption, no CMA). */
export function createPlatform(opts?: PlatformOptions): Platform {
  const o = toOpts('opts', opts);
  const str = (k: string, d: string): string => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'string') throw invalidArgType(`opts.${k}`, 'of type string', v);
    return v;
  };
  const kv = str('kernelVersion', '7.1');
  const arch = str('arch', 'x86_64');
  if (o.memEncrypt !== undefined && typeof o.memEncrypt !== 'boolean') {
    throw invalidArgType('opts.memEncrypt', 'of type boolean', o.memEncrypt);
  }
  const cma = o.cmaSize === undefined ? 0n : toU64('opts.cmaSize', o.cmaSize);
  const p = binding.platformCreate(kv, arch, o.memEncrypt === true, cma);
  if (typeof p === 'number') {
    throw new DmaBufError(p, `bad platform configuration (kernel '${kv}', arch '${arch}', cma ${cma})`, 'platform_create');
  }
  return new Platform(kPlatform, p);
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
    let fdFlags = DEFAULT_FD_FLAGS;
    if (o.fdFlags !== undefined) {
      if (typeof o.fdFlags !== 'number') throw invalidArgType('opts.fdFlags', 'of type number', o.fdFlags);
      if (!Number.isInteger(o.fdFlags) || o.fdFlags < 0 || o.fdFlags > 0xffffffff) {
        throw outOfRange('opts.fdFlags', 'an integer >= 0 and <= 4294967295', o.fdFlags);
      }
      fdFlags = o.fdFlags;
    }
    let heapFlags = 0n;
    if (o.heapFlags !== undefined) heapFlags = toU64('opts.heapFlags', o.heapFlags);
    const r = binding.heapAlloc(this.#handle(), n, fdFlags, heapFlags);
    const b = check(r, 'DMA_HEAP_IOCTL_ALLOC', `allocating ${n} bytes from heap '${this.name}'`);
    return new DmaBuf(kBuf, b as External, this.backend);
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

function toDir(name: string, v: unknown): bigint {
  if (typeof v !== 'string') throw invalidArgType(name, 'of type string', v);
  switch (v) {
    case 'read':
      return DMA_BUF_SYNC_READ;
    case 'write':
      return DMA_BUF_SYNC_WRITE;
    case 'readwrite':
      return DMA_BUF_SYNC_RW;
    default:
      throw invalidArgValue(name, "must be 'read', 'write' or 'readwrite'", v);
  }
}

/** A dma-buf: its fd, CPU mapping, CPU-access brackets, name and fdinfo. */
export class DmaBuf implements Disposable {
  readonly backend: HeapBackend;
  #b: External | null;
  #ab: ArrayBuffer | null = null;

  /** @internal use Heap.alloc() */
  constructor(token: symbol, b: External, backend: HeapBackend) {
    if (token !== kBuf) throw new TypeError('DmaBuf objects come from Heap.alloc() or udmabufCreate()');
    this.#b = b;
    this.backend = backend;
  }

  #handle(op: string): External {
    if (!this.#b) throw new DmaBufError('EBADF', 'dma-buf is closed', op);
    return this.#b;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return this.#b === null;
  }

  /** The buffer size in bytes (a multiple of the page size). */
  get size(): number {
    const s = check(binding.bufSize(this.#handle('lseek')), 'lseek', 'buffer size');
    return Number(s as bigint);
  }

  /** The dma-buf file descriptor (owned by this object; close() closes it). */
  get fd(): number {
    return check(binding.bufFd(this.#handle('fd')), 'fd', 'dma-buf is closed');
  }

  /** /proc/self/fdinfo/<fd> as key → value (first value of a repeated key). */
  fdinfo(): Record<string, string> {
    const entries = check(binding.bufFdinfo(this.#handle('fdinfo')), 'fdinfo', 'reading fdinfo');
    const out: Record<string, string> = {};
    for (const [k, v] of entries as [string, string][]) if (!(k in out)) out[k] = v;
    return out;
  }

  /** The exporter's name (exp_name): the heap's name for heap buffers. */
  get exporterName(): string {
    return this.fdinfo().exp_name ?? '';
  }

  /** The name set with setName(), or null if none. */
  get name(): string | null {
    return this.fdinfo().name ?? null;
  }

  /** DMA_BUF_SET_NAME: 32 bytes or more (UTF-8) is EINVAL, like the kernel. */
  setName(name: string): void {
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
    check(binding.bufSetName(this.#handle('DMA_BUF_SET_NAME'), name), 'DMA_BUF_SET_NAME', `naming the buffer '${name}'`);
  }

  /**
   * mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of the whole buffer as an ArrayBuffer.
   * The same ArrayBuffer until unmap(); after unmap() or close() it is detached
   * (byteLength 0), so it can never read the memory again.
   */
  map(): ArrayBuffer {
    const h = this.#handle('mmap');
    if (this.#ab) return this.#ab;
    const ab = check(binding.bufMap(h), 'mmap', 'mapping the buffer') as ArrayBuffer;
    this.#ab = ab;
    return ab;
  }

  /** munmap: detaches the ArrayBuffer from map(). No-op when not mapped. */
  unmap(): void {
    const h = this.#handle('munmap');
    if (!this.#ab) return;
    const ab = this.#ab;
    this.#ab = null;
    binding.bufUnmap(h, ab);
  }

  /** DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_START | dir. */
  beginCpuAccess(dir: CpuAccessDir): void {
    const d = toDir('dir', dir);
    this.sync(DMA_BUF_SYNC_START | d);
  }

  /** DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_END | dir. */
  endCpuAccess(dir: CpuAccessDir): void {
    const d = toDir('dir', dir);
    this.sync(DMA_BUF_SYNC_END | d);
  }

  /** DMA_BUF_IOCTL_SYNC with raw flags (the kernel's checks: bits outside 7 or no direction → EINVAL). */
  sync(flags: bigint | number): void {
    const f = toU64('flags', flags);
    check(binding.bufSync(this.#handle('DMA_BUF_IOCTL_SYNC'), f), 'DMA_BUF_IOCTL_SYNC', `sync flags ${f}`);
  }

  /** Closes the fd: unmaps (detaching the ArrayBuffer) first. Idempotent. */
  close(): void {
    const b = this.#b;
    if (!b) return;
    const ab = this.#ab;
    this.#ab = null;
    this.#b = null;
    binding.bufClose(b, ab ?? undefined);
    binding.bufDispose(b);
  }
  dispose(): void {
    this.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** @internal A kernel dma-buf handle of another exporter (lib/udmabuf.ts) as a DmaBuf. */
export function adoptKernelDmaBuf(b: External): DmaBuf {
  return new DmaBuf(kBuf, b, 'kernel');
}
