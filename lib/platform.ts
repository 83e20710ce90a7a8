// Emulated platforms: a machine and kernel configuration with heaps of its own
// (native/core/mm/platform.h), fault points, page and encryption counters, a
// revocable VFIO-like exporter, and the system_cc_shared heap's
// set_memory_{de,en}crypted hooks in JavaScript.
import { wrapDmaBuf, type DmaBuf } from './dma_buf';
import { DmaBufError, errnoNumber } from './errors';
import { openPlatformHeap, rawHeapList, toFdFlags, type Heap, type HeapInfo } from './heap';
import { invalidArgType, invalidArgValue, outOfRange, toU64 } from './internal/args';
import { binding, type External } from './internal/binding';
import { toOpts } from './internal/options';

// The page allocator keeps state per max-order block: an emulated platform is
// capped at 1 TiB of RAM (kMaxRamBytes in native/core/mm/platform.h).
const MAX_RAM = 1n << 40n;

export interface PlatformOptions {
  /** Emulated kernel version, e.g. '7.1', '6.12', '6.17' (default '7.1'). */
  kernelVersion?: string;
  /** cc_platform_has(CC_ATTR_MEM_ENCRYPT): a confidential-computing guest (default false). */
  memEncrypt?: boolean;
  /** CMA area size in bytes; 0 (default): no CMA heap. */
  cmaSize?: number | bigint;
  /** Emulated RAM in bytes (capacity only, at most 1 TiB); 0 (default): the host's. */
  ramSize?: number | bigint;
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
 * An arch page conversion, set_memory_decrypted / set_memory_encrypted:
 * `addr` is the emulated direct-map address of the first page. Return 0 (or
 * nothing) for success, a negative errno (-12) or an errno name ('ENOMEM') to
 * fail it.
 */
export type MemCryptHook = (addr: bigint, numPages: number) => number | string | void;

export interface MemCryptHooks {
  decrypt?: MemCryptHook | null;
  encrypt?: MemCryptHook | null;
}

/** A platform's page allocator and page-conversion counters. */
export interface PlatformStats {
  pageSize: number;
  totalPages: number;
  freePages: number;
  /** Allocated and decrypted (system_cc_shared buffers). */
  sharedPages: number;
  /** Deliberately leaked: shared pages whose re-encryption failed. Never freed, never reused. */
  leakedPages: number;
  leakedBlocks: number;
  /** A non-private page was about to be handed out or freed (should stay 0). */
  violations: number;
  decryptCalls: number;
  decryptFailures: number;
  encryptCalls: number;
  encryptFailures: number;
}

/** A leaked block: its direct-map address (as the hooks saw it) and size in pages. */
export interface LeakedBlock {
  addr: bigint;
  numPages: number;
}

export interface VfioExportOptions {
  /** open_flags: O_ACCMODE | O_CLOEXEC bits (default O_RDWR | O_CLOEXEC). */
  fdFlags?: number;
}

// --- JS hooks -----------------------------------------------------------------
// Native code calls one dispatcher per environment with the id of the hooks
// it runs; the functions live here. Hooks run synchronously on this thread,
// inside the call that converts pages (alloc, close, GC of a buffer). A
// conversion on another thread, or when JS cannot run, fails with EPERM
// without calling JS (see native/addon/platform_binding.cc).

const EIO = -5;
const EPERM = -1;
const hookTable = new Map<number, { decrypt: MemCryptHook | undefined; encrypt: MemCryptHook | undefined }>();
let nextHookId = 1;
let hookDepth = 0;
let cryptEnv: External | null = null;

function reportLater(e: unknown): void {
  queueMicrotask(() => {
    throw e;
  });
}

function hookResult(r: unknown): number {
  if (r === undefined || r === 0) return 0;
  if (typeof r === 'number' && Number.isInteger(r) && r < 0 && r >= -4095) return r;
  if (typeof r === 'string') {
    const n = errnoNumber(r);
    if (n !== undefined) return n;
  }
  const e = new TypeError(`A mem-crypt hook must return 0, a negative errno or an errno name. Received ${String(r)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_RETURN_VALUE';
  reportLater(e);
  return EIO;
}

function cryptDispatch(id: number, decrypt: boolean, addr: bigint, numPages: number): number {
  const hooks = hookTable.get(id);
  const fn = decrypt ? hooks?.decrypt : hooks?.encrypt;
  if (!fn) return EPERM;
  hookDepth++;
  let r: unknown;
  try {
    r = fn(addr, numPages);
  } catch (e) {
    // Like a throwing fence callback: an uncaught exception, and the conversion fails.
    reportLater(e);
    return EIO;
  } finally {
    hookDepth--;
  }
  return hookResult(r);
}

function env(): External {
  cryptEnv ??= binding.memCryptInit(cryptDispatch);
  return cryptEnv;
}

function toHook(name: string, v: unknown): MemCryptHook | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'function') throw invalidArgType(name, 'of type function', v);
  return v as MemCryptHook;
}

function insideHook(op: string): DmaBufError {
  return new DmaBufError('EDEADLK', 'not allowed inside a mem-crypt hook (the swap waits for running hooks)', op);
}

const kPlatform = Symbol('dmabuf.platform');

// Brand check: the handle is read from the private slot of a real Platform;
// anything else is a TypeError (ERR_INVALID_ARG_TYPE), never an EBADF.
let platSlot!: (v: unknown) => External | null;
function platHandle(v: unknown): External {
  const p = platSlot(v);
  if (!p) throw new DmaBufError('EBADF', 'platform is disposed', 'platform');
  return p;
}

/**
 * An emulated machine with its own heaps: kernel version, architecture, memory
 * encryption (system_cc_shared appears only with memEncrypt on an arch whose
 * heap can call set_memory_decrypted), RAM and CMA. Buffers keep it alive.
 */
export class Platform implements Disposable {
  #p: External | null;
  #hookId = 0;
  static {
    platSlot = (v) => {
      if (typeof v !== 'object' || v === null || !(#p in v)) throw invalidArgType('this', 'an instance of Platform', v);
      return (v as Platform).#p;
    };
  }

  /** @internal use createPlatform() */
  constructor(token: symbol, p: External) {
    if (token !== kPlatform) throw new TypeError('Platform objects come from createPlatform()');
    this.#p = p;
  }

  /** Adopts a handle from exportHandle() (once), typically in another worker. EINVAL for an unknown one. */
  static importHandle(h: bigint): Platform {
    if (typeof h !== 'bigint') throw invalidArgType('h', 'of type bigint', h);
    return new Platform(kPlatform, binding.platformImport(toU64('h', h)));
  }

  /** Whether dispose() has run. */
  get disposed(): boolean {
    return platSlot(this) === null;
  }

  /** A new reference another worker can adopt with Platform.importHandle() (once). */
  exportHandle(): bigint {
    return binding.platformExport(platHandle(this));
  }

  listHeaps(): HeapInfo[] {
    return rawHeapList(platHandle(this)).map((h) => ({ ...h, backend: 'emulated' as const }));
  }

  openHeap(name: string): Heap {
    const p = platHandle(this);
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
    return openPlatformHeap(name, p);
  }

  /**
   * VFIO_DEVICE_FEATURE_DMA_BUF: a revocable exporter's buffer of `size` bytes
   * (page aligned, else EINVAL) over emulated device memory. revoke() /
   * restore() toggle it; it refuses pinned and static importers (EOPNOTSUPP),
   * needs peer2peer importers, and only MAP_SHARED CPU mappings.
   */
  exportVfioBuffer(size: number | bigint, opts?: VfioExportOptions): DmaBuf {
    platSlot(this);
    return vfioExport(size, opts, () => platHandle(this));
  }

  /** Arms a fault point: 'alloc_pages', 'cma_alloc', 'set_memory_decrypted', 'set_memory_encrypted', 'fatal_signal_pending', 'dma_buf_export', 'dma_buf_fd'. */
  setFault(site: string, opts: FaultOptions): void {
    platSlot(this);
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
    binding.platformSetFault(platHandle(this), site, nth, times, error);
  }

  /**
   * The arch's set_memory_decrypted / set_memory_encrypted, in JavaScript
   * (null or a missing hook: the conversion succeeds). Replaces whatever hooks
   * the platform had; null removes them. Hooks run on this thread only: a
   * conversion on another thread (a worker using this platform) fails with
   * EPERM without calling them, which fails that allocation, or leaks the
   * pages of that free. A hook that throws (or returns something else than 0,
   * a negative errno or an errno name) fails the conversion with EIO and the
   * exception surfaces as an uncaught exception. Removed by dispose() and when
   * this thread's environment ends; calling this (or dispose()) from inside a
   * hook throws EDEADLK.
   */
  setMemCryptHooks(hooks: MemCryptHooks | null): void {
    platSlot(this);
    if (hooks !== null && (typeof hooks !== 'object' || Array.isArray(hooks))) {
      throw invalidArgType('hooks', 'of type object or null', hooks);
    }
    const decrypt = toHook('hooks.decrypt', hooks?.decrypt);
    const encrypt = toHook('hooks.encrypt', hooks?.encrypt);
    const p = platHandle(this);
    if (hookDepth > 0) throw insideHook('set_mem_crypt_hooks');
    const old = this.#hookId;
    let id = 0;
    if (decrypt || encrypt) {
      id = nextHookId;
      nextHookId = nextHookId >= 0xffffffff ? 1 : nextHookId + 1;
      hookTable.set(id, { decrypt, encrypt });
    }
    binding.platformSetMemCryptHooks(p, env(), id, decrypt !== undefined, encrypt !== undefined);
    this.#hookId = id;
    if (old) hookTable.delete(old);
  }

  /** Page allocator and page-conversion counters. */
  stats(): PlatformStats {
    return binding.platformStats(platHandle(this));
  }

  /** Blocks leaked because re-encryption failed, oldest first (never freed, never reused). */
  leaked(): LeakedBlock[] {
    return binding.platformLeaked(platHandle(this)).map(([addr, numPages]) => ({ addr, numPages }));
  }

  /** Drops this object's reference (buffers and heaps keep the platform) and removes hooks it set. */
  dispose(): void {
    const p = platSlot(this);
    if (!p) return;
    if (this.#hookId) {
      if (hookDepth > 0) throw insideHook('platform dispose');
      binding.platformClearMemCryptHooks(p, env(), this.#hookId);
      hookTable.delete(this.#hookId);
      this.#hookId = 0;
    }
    binding.platformDispose(p);
    this.#p = null;
  }
  [Symbol.dispose](): void {
    Platform.prototype.dispose.call(this);
  }
}

function vfioExport(size: unknown, opts: unknown, platform: () => External | undefined): DmaBuf {
  const n = toU64('size', size);
  const o = toOpts('opts', opts);
  const fdFlags = toFdFlags('opts.fdFlags', o.fdFlags);
  return wrapDmaBuf(binding.vfioExport(platform(), n, fdFlags));
}

/** Platform.exportVfioBuffer() on the default emulated platform. */
export function exportVfioBuffer(size: number | bigint, opts?: VfioExportOptions): DmaBuf {
  return vfioExport(size, opts, () => undefined);
}

/** A new emulated platform (defaults: Linux 7.1, x86_64, no memory encryption, host RAM, no CMA). */
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
  const ram = o.ramSize === undefined ? 0n : toU64('opts.ramSize', o.ramSize);
  if (ram > MAX_RAM) throw outOfRange('opts.ramSize', '<= 1 TiB (2n ** 40n bytes)', o.ramSize);
  if (cma > MAX_RAM) throw outOfRange('opts.cmaSize', '<= 1 TiB (2n ** 40n bytes)', o.cmaSize);
  return new Platform(kPlatform, binding.platformCreate(kv, arch, o.memEncrypt === true, cma, ram));
}
