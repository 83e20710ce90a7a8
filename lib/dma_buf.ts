// A dma-buf, either backend: its fd, CPU mapping and CPU-access brackets, name,
// fdinfo, and implicit sync -- EXPORT/IMPORT_SYNC_FILE on both backends; the
// reservation object and attachments on emulated buffers only (the kernel keeps
// both to itself); revocation for revocable (VFIO-like) exporters.
import { createAttachment, parseAttachOptions, type Attachment, type AttachOptions } from './attachment';
import { DmaBufError } from './errors';
import type { HeapBackend } from './heap';
import { abortError, invalidArgType, invalidArgValue, outOfRange, toU64 } from './internal/args';
import { binding, type External } from './internal/binding';
import { drain } from './internal/dispatch';
import { parseWaitOptions, waitTimer, type WaitOptions } from './internal/wait_options';
import { resvFromHandle, type Resv } from './resv';
import { isSyncFile, syncFileHandle, wrapSyncFile, type SyncFile } from './sync_file';

export const DMA_BUF_SYNC_READ = 1n;
export const DMA_BUF_SYNC_WRITE = 2n;
export const DMA_BUF_SYNC_RW = 3n;
export const DMA_BUF_SYNC_START = 0n;
export const DMA_BUF_SYNC_END = 4n;

export type CpuAccessDir = 'read' | 'write' | 'readwrite';
/** Which implicit fences a sync_file export/import is about: 'read' (the writers), 'write' (everyone). */
export type SyncFileDir = 'read' | 'write' | 'readwrite';

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

/** What busy()/wait() are about, as poll() on a dma-buf: 'read' (EPOLLIN: the writers), 'write' (EPOLLOUT: every fence). */
export type PollDir = 'read' | 'write';

function toPollDir(name: string, v: unknown): PollDir {
  if (typeof v !== 'string') throw invalidArgType(name, 'of type string', v);
  if (v !== 'read' && v !== 'write') throw invalidArgValue(name, "must be 'read' or 'write'", v);
  return v;
}

export interface FromFdOptions {
  /** true (default): the DmaBuf owns a dup and the caller keeps `fd`; false: it takes `fd` over. */
  dup?: boolean;
}

/** A pending busy-wait on a buffer (wait()): settled once. */
interface BufWaiter {
  /** 1: 'read' (readable), 2: 'write' (writable), as bufPoll's events. */
  events: 1 | 2;
  done(ok: boolean, err?: Error): void;
}

const kBuf = Symbol('dmabuf.buf');

// Set in processes started by `dmabuf run` (lib/run.ts).
const UNDER_RUN = !!process.env['DMABUF_RUN_SOCKET'];

/** @internal Wraps a native buffer handle (Heap.alloc, exportVfioBuffer). */
export function wrapDmaBuf(b: External): DmaBuf {
  return new DmaBuf(kBuf, b);
}

// Brand check: the handle is read from the private slot of a real DmaBuf;
// anything else is a TypeError (ERR_INVALID_ARG_TYPE), never an EBADF.
let isDmaBuf!: (v: unknown) => v is DmaBuf;
let bufSlot!: (v: unknown) => External | null;
/** The open buffer's handle: TypeError for a wrong receiver, EBADF (naming `op`) once closed. */
function bufHandle(v: unknown, op: string): External {
  const b = bufSlot(v);
  if (!b) throw new DmaBufError('EBADF', 'dma-buf is closed', op);
  return b;
}

/** A dma-buf: its fd, CPU mapping, CPU-access brackets, name, fdinfo and implicit sync. */
export class DmaBuf implements Disposable {
  #backend: HeapBackend;
  #b: External | null;
  #ab: ArrayBuffer | null = null;
  #resv: Resv | null = null;
  // wait(): every pending waiter, and (kernel fd) the one uv_poll they share --
  // libuv allows one poll handle per fd per loop -- watching the union of
  // their directions.
  #waiters = new Set<BufWaiter>();
  #poll: External | null = null;
  #pollEvents = 0;
  #settling = false; // settling several waiters: one #updatePoll() at the end
  static {
    isDmaBuf = (v): v is DmaBuf => typeof v === 'object' && v !== null && #b in v;
    bufSlot = (v) => {
      if (!isDmaBuf(v)) throw invalidArgType('this', 'an instance of DmaBuf', v);
      return v.#b;
    };
  }

  /** @internal use Heap.alloc() */
  constructor(token: symbol, b: External) {
    if (token !== kBuf) throw new TypeError('DmaBuf objects come from Heap.alloc() or udmabufCreate()');
    this.#b = b;
    this.#backend = binding.bufBackend(b); // the addon's handle says which
  }

  /**
   * Adopts any dma-buf fd (from an FdChannel, another library, a V4L2 or DRM
   * export) as a kernel-backend DmaBuf; its size, exporter name and name come
   * from the kernel. With `{ dup: true }` (the default) the DmaBuf owns a dup
   * and the caller keeps (and closes) `fd`; with `{ dup: false }` it takes `fd`
   * over and closes it on close() (when refused -- TypeError, RangeError,
   * EINVAL, EBADF -- the caller still owns it). An fd that is not a dma-buf:
   * EINVAL; a closed one: EBADF.
   */
  static fromFd(fd: number, opts?: FromFdOptions): DmaBuf {
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw outOfRange('fd', 'a non-negative 32-bit integer', fd);
    if (opts !== undefined && (typeof opts !== 'object' || opts === null || Array.isArray(opts))) {
      throw invalidArgType('opts', 'of type object', opts);
    }
    const dup = opts?.dup ?? true;
    if (typeof dup !== 'boolean') throw invalidArgType('opts.dup', 'of type boolean', dup);
    return new DmaBuf(kBuf, binding.bufFromFd(fd, dup));
  }

  /**
   * @internal An emulated buffer another process sent over an FdChannel: a
   * DmaBuf over a dup of its memfd (the same bytes; no device attachments, and
   * its implicit fences stay with the sender: core/buffer/memfd_buf.h). The
   * caller keeps `fd`.
   */
  static fromMemfd(fd: number, info: { size: number; name: string; exporterName: string }): DmaBuf {
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    const size = info?.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw outOfRange('info.size', 'a positive integer', size);
    const name = typeof info.name === 'string' ? info.name : '';
    const exp = typeof info.exporterName === 'string' && info.exporterName ? info.exporterName : 'memfd';
    return new DmaBuf(kBuf, binding.bufFromMemfd(fd, BigInt(size), exp, name));
  }

  /** 'emulated' (an in-process buffer) or 'kernel' (a real dma-buf fd). */
  get backend(): HeapBackend {
    bufSlot(this); // a TypeError for a wrong receiver
    return this.#backend;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return bufSlot(this) === null;
  }

  /** The buffer size in bytes (a multiple of the page size). */
  get size(): number {
    return Number(binding.bufSize(bufHandle(this, 'lseek')));
  }

  /** The dma-buf file descriptor (owned by this object; close() closes it). */
  get fd(): number {
    return binding.bufFd(bufHandle(this, 'fd'));
  }

  /** /proc/self/fdinfo/<fd> as key → value (first value of a repeated key). */
  fdinfo(): Record<string, string> {
    const entries = binding.bufFdinfo(bufHandle(this, 'fdinfo'));
    const out: Record<string, string> = {};
    for (const [k, v] of entries) if (!(k in out)) out[k] = v;
    return out;
  }

  /** The exporter's name (exp_name): the heap's name for heap buffers. */
  get exporterName(): string {
    return DmaBuf.prototype.fdinfo.call(this).exp_name ?? '';
  }

  /** The name set with setName(), or null if none. */
  get name(): string | null {
    return DmaBuf.prototype.fdinfo.call(this).name ?? null;
  }

  /** DMA_BUF_SET_NAME: 32 bytes or more (UTF-8) is EINVAL, like the kernel. */
  setName(name: string): void {
    const h = bufHandle(this, 'DMA_BUF_SET_NAME');
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
    binding.bufSetName(h, name);
  }

  /**
   * mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of the whole buffer as an ArrayBuffer.
   * The same ArrayBuffer until unmap(); after unmap() or close() it is detached
   * (byteLength 0), so it can never read the memory again. The same happens if
   * this DmaBuf is garbage-collected without close(): keep the DmaBuf alive
   * (and close it) while the ArrayBuffer is in use.
   */
  map(): ArrayBuffer {
    const h = bufHandle(this, 'mmap');
    this.#ab ??= binding.bufMap(h);
    return this.#ab;
  }

  /** munmap: detaches the ArrayBuffer from map(). No-op when not mapped. */
  unmap(): void {
    const h = bufHandle(this, 'munmap');
    if (!this.#ab) return;
    const ab = this.#ab;
    this.#ab = null;
    binding.bufUnmap(h, ab);
  }

  /** DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_START | dir (waits for the implicit fences). */
  beginCpuAccess(dir: CpuAccessDir): void {
    bufSlot(this);
    const d = toDir('dir', dir);
    DmaBuf.prototype.sync.call(this, DMA_BUF_SYNC_START | d);
  }

  /** DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_END | dir. */
  endCpuAccess(dir: CpuAccessDir): void {
    bufSlot(this);
    const d = toDir('dir', dir);
    DmaBuf.prototype.sync.call(this, DMA_BUF_SYNC_END | d);
  }

  /** DMA_BUF_IOCTL_SYNC with raw flags (the kernel's checks: bits outside 7 or no direction → EINVAL). */
  sync(flags: bigint | number): void {
    bufSlot(this);
    const f = toU64('flags', flags);
    binding.bufSync(bufHandle(this, 'DMA_BUF_IOCTL_SYNC'), f);
  }

  /**
   * dmabuf->resv: the buffer's reservation object (emulated buffers). The same
   * Resv on every read until close() disposes it; it holds a reference to the
   * buffer, so a handle exported to a worker keeps the buffer alive. Kernel
   * buffers: EOPNOTSUPP (use exportSyncFile()/importSyncFile()).
   */
  get resv(): Resv {
    const h = bufHandle(this, 'dma_buf_resv');
    if (!this.#resv || this.#resv.disposed) this.#resv = resvFromHandle(binding.bufResv(h));
    return this.#resv;
  }

  /**
   * dma_buf_attach / dma_buf_dynamic_attach: a device's attachment (emulated
   * buffers; kernel buffers: EOPNOTSUPP, attachments are kernel-internal).
   * The exporter's errors come back: a revocable exporter refuses pinned and
   * static importers (EOPNOTSUPP), importers without peer2peer (EOPNOTSUPP),
   * and everyone while revoked (ENODEV); EDEADLK while this thread holds the
   * buffer's resv.
   */
  attach(opts?: AttachOptions): Attachment {
    bufSlot(this);
    const o = parseAttachOptions(opts);
    const h = bufHandle(this, 'dma_buf_attach');
    return createAttachment(h, o);
  }

  /**
   * DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a new sync_file of this buffer's backend
   * with what an access must wait for -- 'read': the writers; 'write' (or
   * 'readwrite'): every reader and writer. Already signalled when nothing is
   * pending. Emulated kernels before 6.0: ENOTTY.
   */
  exportSyncFile(dir: SyncFileDir): SyncFile {
    bufSlot(this);
    const flags = Number(toDir('dir', dir));
    const h = bufHandle(this, 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    return wrapSyncFile(binding.bufExportSyncFile(h, flags));
  }

  /**
   * DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds the sync_file's fences (unwrapped) as
   * implicit fences -- write fences for 'write'/'readwrite', read fences for
   * 'read'. The sync_file must have this buffer's backend (EINVAL otherwise);
   * EDEADLK while this thread holds the buffer's resv.
   */
  importSyncFile(s: SyncFile, dir: SyncFileDir): void {
    bufSlot(this);
    if (!isSyncFile(s)) throw invalidArgType('s', 'an instance of SyncFile', s);
    const flags = Number(toDir('dir', dir));
    const op = 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE';
    const h = bufHandle(this, op);
    binding.bufImportSyncFile(h, syncFileHandle(s), flags);
  }

  /** Whether a revocable exporter has revoked the buffer (false for every other buffer). */
  get revoked(): boolean {
    return binding.bufRevoked(bufHandle(this, 'vfio_dmabuf_revoked'));
  }

  /**
   * Revokes a revocable exporter's buffer (VFIO: device memory disabled):
   * every dynamic importer's moveNotify runs before this returns, the CPU
   * mapping ends (map()'s ArrayBuffer is detached), and attach, map and
   * Attachment.map fail with ENODEV until restore().
   * Other buffers: EINVAL (kernel backend: EOPNOTSUPP).
   */
  revoke(): void {
    const h = bufHandle(this, 'vfio_pci_dma_buf_move(revoke)');
    this.#setRevoked(h, true);
  }

  /** Undoes revoke() (VFIO: memory enabled again); importers get moveNotify again. */
  restore(): void {
    const h = bufHandle(this, 'vfio_pci_dma_buf_move(restore)');
    this.#setRevoked(h, false);
  }

  #setRevoked(h: External, revoked: boolean): void {
    // Revocation zaps CPU mappings (PROT_NONE): detach the ArrayBuffer first,
    // so JavaScript can never touch the range. Buffers that cannot be revoked
    // keep theirs (checked natively, without the lock, before anything changes).
    if (revoked && this.#ab && binding.bufRevocable(h)) this.unmap();
    try {
      binding.bufSetRevoked(h, revoked);
    } finally {
      drain(); // move_notify callbacks queued on this thread
    }
  }

  /**
   * Whether poll() on the buffer would block for `dir`: 'read' (EPOLLIN) while
   * a writer's fence is pending, 'write' (EPOLLOUT) while any fence is. Like
   * poll(2) on the fd, it enables signalling on the fences it looks at.
   */
  busy(dir: PollDir): boolean {
    const h = bufHandle(this, 'dma_buf_poll');
    const d = toPollDir('dir', dir);
    try {
      return binding.bufBusy(h, d);
    } finally {
      drain(); // callbacks of fences the check signalled
    }
  }

  /**
   * Resolves true once the buffer is no longer busy(dir) -- what poll() on the
   * fd waits for: 'read' the writers, 'write' every fence -- false on timeout;
   * rejects on abort (AbortError) or close() (EBADF). A kernel buffer's fd is
   * watched with uv_poll on Node's loop (one watch per buffer, shared by every
   * pending wait); an emulated buffer waits on its reservation object (usage
   * 'write' for 'read', 'read' for 'write'). Never blocks the loop.
   */
  wait(dir: PollDir, opts?: WaitOptions): Promise<boolean> {
    try {
      const h = bufHandle(this, 'dma_buf_poll');
      const d = toPollDir('dir', dir);
      const { timeoutMs, signal } = parseWaitOptions(opts);
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      if (!DmaBuf.prototype.busy.call(this, d)) return Promise.resolve(true);
      if (timeoutMs === 0) return Promise.resolve(false);
      // Under `dmabuf run` a kernel dma-buf fd is the broker's socket: epoll
      // cannot see its fences (docs/run.md), so wait on exported sync_files.
      const pollable = binding.bufPollable(h) && !UNDER_RUN;
      return new Promise<boolean>((resolve, reject) => {
        let timer: { cancel(): void } | undefined;
        let resvWait: AbortController | undefined;
        const onAbort = (): void => w.done(false, abortError(signal?.reason));
        const w: BufWaiter = {
          events: d === 'read' ? 1 : 2,
          done: (ok, err) => {
            if (!this.#waiters.delete(w)) return; // settled already
            timer?.cancel();
            signal?.removeEventListener('abort', onAbort);
            resvWait?.abort();
            if (pollable && !this.#settling) this.#updatePoll();
            if (err) reject(err);
            else resolve(ok);
          },
        };
        this.#waiters.add(w);
        if (timeoutMs !== Infinity) timer = waitTimer(timeoutMs, () => w.done(false));
        signal?.addEventListener('abort', onAbort, { once: true });
        if (pollable) {
          this.#updatePoll();
        } else {
          resvWait = new AbortController();
          (this.backend === 'kernel' ? this.#waitExported(d, resvWait.signal) : this.#waitResv(d, resvWait.signal)).then(
            () => w.done(true),
            (e: unknown) => w.done(false, e instanceof Error ? e : new Error(String(e))),
          );
        }
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // Emulated: the reservation object's fences of the usage poll() looks at,
  // again until busy() says no (fences added meanwhile count, as poll's
  // re-check does). Ends early (rejecting) when `stop` aborts.
  async #waitResv(d: PollDir, stop: AbortSignal): Promise<void> {
    const usage = d === 'read' ? 'write' : 'read';
    for (;;) {
      const resv = this.resv;
      await resv.wait(usage, { signal: stop });
      if (stop.aborted || this.closed || !DmaBuf.prototype.busy.call(this, d)) return;
    }
  }

  // Kernel fd under `dmabuf run`: the fences poll() would wait for, as a
  // sync_file (EXPORT_SYNC_FILE: 'read' exports the writers), again until
  // busy() says no.
  async #waitExported(d: PollDir, stop: AbortSignal): Promise<void> {
    for (;;) {
      const sf = this.exportSyncFile(d);
      try {
        await sf.wait({ signal: stop });
      } finally {
        sf.close();
      }
      if (stop.aborted || this.closed || !DmaBuf.prototype.busy.call(this, d)) return;
    }
  }

  // Kernel fd: one uv_poll for the union of the pending waiters' directions,
  // restarted when that union changes (or after it fired with waiters left).
  #updatePoll(): void {
    let events = 0;
    for (const w of this.#waiters) events |= w.events;
    if (events === this.#pollEvents && (this.#poll || events === 0)) return;
    if (this.#poll) {
      binding.bufPollCancel(this.#poll);
      this.#poll = null;
    }
    this.#pollEvents = 0;
    if (events === 0 || !this.#b) return;
    try {
      this.#poll = binding.bufPoll(this.#b, events, (ready, err) => {
        this.#poll = null; // the native side closed it before calling us
        this.#pollEvents = 0;
        this.#settling = true;
        try {
          for (const w of [...this.#waiters]) {
            if (err) w.done(false, err);
            else if (ready & w.events) w.done(true);
          }
        } finally {
          this.#settling = false;
        }
        this.#updatePoll(); // the waiters left (none, or the other direction)
      });
      this.#pollEvents = events;
    } catch (e) {
      this.#settling = true;
      try {
        for (const w of [...this.#waiters]) w.done(false, e as Error);
      } finally {
        this.#settling = false;
      }
    }
  }

  /** Closes the fd: unmaps (detaching the ArrayBuffer) and disposes `resv` first; pending waits reject with EBADF. Idempotent. */
  close(): void {
    const b = bufSlot(this);
    if (!b) return;
    if (this.#waiters.size) {
      const closed = new DmaBufError('EBADF', 'dma-buf was closed while waiting', 'dma_buf_poll');
      this.#settling = true;
      try {
        for (const w of [...this.#waiters]) w.done(false, closed);
      } finally {
        this.#settling = false;
      }
    }
    if (this.#poll) binding.bufPollCancel(this.#poll);
    this.#poll = null;
    this.#pollEvents = 0;
    const ab = this.#ab;
    this.#ab = null;
    this.#b = null;
    this.#resv?.dispose();
    this.#resv = null;
    binding.bufClose(b, ab ?? undefined);
    binding.bufDispose(b);
  }
  dispose(): void {
    DmaBuf.prototype.close.call(this);
  }
  [Symbol.dispose](): void {
    DmaBuf.prototype.close.call(this);
  }
}

