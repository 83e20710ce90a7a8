// A dma-buf, either backend: its fd, CPU mapping and CPU-access brackets, name,
// fdinfo, and implicit sync -- EXPORT/IMPORT_SYNC_FILE on both backends; the
// reservation object and attachments on emulated buffers only (the kernel keeps
// both to itself); revocation for revocable (VFIO-like) exporters.
import { createAttachment, parseAttachOptions, type Attachment, type AttachOptions } from './attachment';
import { binding as rawBinding, type External } from './binding';
import { drain } from './dispatch';
import { DmaBufError, invalidArgType, invalidArgValue, toU64 } from './errors';
import type { HeapBackend } from './heap';
import { check, type KErr } from './heap_util';
import { resvFromHandle, type Resv } from './resv';
import { SyncFile, wrapSyncFile } from './sync_file';

interface DmaBufBinding {
  bufFd(b: External): number;
  bufSize(b: External): bigint | number | KErr;
  bufFdinfo(b: External): [string, string][] | number | KErr;
  bufSetName(b: External, name: string): number | KErr;
  bufSync(b: External, flags: bigint): number | KErr;
  bufMap(b: External): ArrayBuffer | number | KErr;
  bufUnmap(b: External, ab?: ArrayBuffer): void;
  bufClose(b: External, ab?: ArrayBuffer): number;
  bufDispose(b: External): void;
  bufResv(b: External): External | number;
  bufExportSyncFile(b: External, flags: number): External | number | KErr;
  bufImportSyncFile(b: External, sf: External, flags: number): number | KErr;
  bufSetRevoked(b: External, revoked: boolean): number;
  bufRevoked(b: External): number;
  bufRevocable(b: External): boolean;
}
const binding = rawBinding as unknown as DmaBufBinding;

export const DMA_BUF_SYNC_READ = 1n;
export const DMA_BUF_SYNC_WRITE = 2n;
export const DMA_BUF_SYNC_RW = 3n;
export const DMA_BUF_SYNC_START = 0n;
export const DMA_BUF_SYNC_END = 4n;

export type CpuAccessDir = 'read' | 'write' | 'readwrite';
/** Which implicit fences a sync_file export/import is about: 'read' (the writers), 'write' (everyone). */
export type SyncFileDir = 'read' | 'write' | 'readwrite';

const EDEADLK = -35;

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

function lockedByCaller(op: string): DmaBufError {
  return new DmaBufError('EDEADLK', "this thread holds the buffer's reservation lock (resv.lock()): unlock it first", op);
}

const kBuf = Symbol('dmabuf.buf');

/** @internal Wraps a native buffer handle (Heap.alloc, exportVfioBuffer). */
export function wrapDmaBuf(b: External, backend: HeapBackend): DmaBuf {
  return new DmaBuf(kBuf, b, backend);
}

/** A dma-buf: its fd, CPU mapping, CPU-access brackets, name, fdinfo and implicit sync. */
export class DmaBuf implements Disposable {
  readonly backend: HeapBackend;
  #b: External | null;
  #ab: ArrayBuffer | null = null;
  #resv: Resv | null = null;

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

  /** DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_START | dir (waits for the implicit fences). */
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

  /**
   * dmabuf->resv: the buffer's reservation object (emulated buffers). The same
   * Resv on every read until close() disposes it; it holds a reference to the
   * buffer, so a handle exported to a worker keeps the buffer alive. Kernel
   * buffers: EOPNOTSUPP (use exportSyncFile()/importSyncFile()).
   */
  get resv(): Resv {
    const h = this.#handle('dma_buf_resv');
    if (this.backend === 'kernel') {
      throw new DmaBufError(
        'EOPNOTSUPP',
        "a kernel dma-buf's reservation object is not reachable from userspace: use exportSyncFile()/importSyncFile()",
        'dma_buf_resv',
      );
    }
    if (!this.#resv || this.#resv.disposed) {
      this.#resv = resvFromHandle(check(binding.bufResv(h), 'dma_buf_resv', 'dma-buf is closed'));
    }
    return this.#resv;
  }

  /**
   * dma_buf_attach / dma_buf_dynamic_attach: a device's attachment (emulated
   * buffers; kernel buffers: EOPNOTSUPP, attachments are kernel-internal).
   * The exporter's errors come back: a revocable exporter refuses pinned and
   * static importers (EOPNOTSUPP), importers without peer2peer (EOPNOTSUPP),
   * and everyone while revoked (ENODEV).
   */
  attach(opts?: AttachOptions): Attachment {
    const o = parseAttachOptions(opts);
    const h = this.#handle('dma_buf_attach');
    if (this.backend === 'kernel') {
      throw new DmaBufError('EOPNOTSUPP', 'attachments of a kernel dma-buf are made by kernel drivers, not from userspace', 'dma_buf_attach');
    }
    return createAttachment(h, o);
  }

  /**
   * DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a new sync_file of this buffer's backend
   * with what an access must wait for -- 'read': the writers; 'write' (or
   * 'readwrite'): every reader and writer. Already signalled when nothing is
   * pending. Emulated kernels before 6.0: ENOTTY.
   */
  exportSyncFile(dir: SyncFileDir): SyncFile {
    const flags = Number(toDir('dir', dir));
    const h = this.#handle('DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    const r = binding.bufExportSyncFile(h, flags);
    const sf = check(r, 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE', `exporting the implicit fences for ${dir}`);
    return wrapSyncFile(sf as External, this.backend);
  }

  /**
   * DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds the sync_file's fences (unwrapped) as
   * implicit fences -- write fences for 'write'/'readwrite', read fences for
   * 'read'. The sync_file must have this buffer's backend (EINVAL otherwise).
   */
  importSyncFile(s: SyncFile, dir: SyncFileDir): void {
    if (!(s instanceof SyncFile)) throw invalidArgType('s', 'an instance of SyncFile', s);
    const flags = Number(toDir('dir', dir));
    const op = 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE';
    const h = this.#handle(op);
    if (s.backend !== this.backend) {
      throw new DmaBufError('EINVAL', `cannot import a ${s.backend} sync_file into a ${this.backend} dma-buf`, op);
    }
    const r = binding.bufImportSyncFile(h, s.handle, flags);
    if (r === EDEADLK) throw lockedByCaller(op);
    check(r, op, `importing a sync_file for ${dir}`);
  }

  /** Whether a revocable exporter has revoked the buffer (false for every other buffer). */
  get revoked(): boolean {
    const r = binding.bufRevoked(this.#handle('vfio_dmabuf_revoked'));
    if (r === EDEADLK) throw lockedByCaller('vfio_dmabuf_revoked');
    return check(r, 'vfio_dmabuf_revoked', 'dma-buf is closed') === 1;
  }

  /**
   * Revokes a revocable exporter's buffer (VFIO: device memory disabled):
   * every dynamic importer's moveNotify runs before this returns, the CPU
   * mapping ends (map()'s ArrayBuffer is detached), and attach, map and
   * Attachment.map fail with ENODEV until restore().
   * Other buffers: EINVAL (kernel backend: EOPNOTSUPP).
   */
  revoke(): void {
    this.#setRevoked(true);
  }

  /** Undoes revoke() (VFIO: memory enabled again); importers get moveNotify again. */
  restore(): void {
    this.#setRevoked(false);
  }

  #setRevoked(revoked: boolean): void {
    const op = revoked ? 'vfio_pci_dma_buf_move(revoke)' : 'vfio_pci_dma_buf_move(restore)';
    const h = this.#handle(op);
    // Revocation zaps CPU mappings (PROT_NONE): detach the ArrayBuffer first,
    // so JavaScript can never touch the range. Buffers that cannot be revoked
    // keep theirs (checked natively, without the lock, before anything changes).
    if (revoked && this.#ab && binding.bufRevocable(h)) this.unmap();
    const r = binding.bufSetRevoked(h, revoked);
    drain(); // move_notify callbacks queued on this thread
    if (r === EDEADLK) throw lockedByCaller(op);
    if (r === -22) throw new DmaBufError('EINVAL', 'not a revocable exporter (exportVfioBuffer() makes one)', op);
    check(r, op, 'revoking the buffer');
  }

  /** Closes the fd: unmaps (detaching the ArrayBuffer) and disposes `resv` first. Idempotent. */
  close(): void {
    const b = this.#b;
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
    this.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}
