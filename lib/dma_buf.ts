// A dma-buf, either backend: its fd, CPU mapping and CPU-access brackets, name,
// fdinfo, and implicit sync -- EXPORT/IMPORT_SYNC_FILE on both backends; the
// reservation object and attachments on emulated buffers only (the kernel keeps
// both to itself); revocation for revocable (VFIO-like) exporters.
import { createAttachment, parseAttachOptions, type Attachment, type AttachOptions } from './attachment';
import { DmaBufError } from './errors';
import type { HeapBackend } from './heap';
import { invalidArgType, invalidArgValue, toU64 } from './internal/args';
import { binding, type External } from './internal/binding';
import { drain } from './internal/dispatch';
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

const kBuf = Symbol('dmabuf.buf');

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

  /** Closes the fd: unmaps (detaching the ArrayBuffer) and disposes `resv` first. Idempotent. */
  close(): void {
    const b = bufSlot(this);
    if (!b) return;
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

