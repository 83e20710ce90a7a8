// udmabuf (drivers/dma-buf/udmabuf.c): pages of a sealed memfd as a dma-buf,
// real kernel only. Node has no memfd_create, so Memfd comes with it.
//
// The kernel wants F_SEAL_SHRINK on every memfd and refuses F_SEAL_WRITE /
// F_SEAL_FUTURE_WRITE; offsets and sizes must be page aligned; the total is
// capped by size_limit_mb (64 MiB by default) and a list by list_limit (1024).
// All of that is the kernel's to say (EINVAL): TypeScript checks only types
// and ranges, and the errno comes back as a DmaBufError naming the ioctl.
import * as fs from 'node:fs';
import { wrapDmaBuf, type DmaBuf } from './dma_buf';
import { DmaBufError } from './errors';
import { invalidArgType, invalidArgValue, outOfRange, toU64 } from './internal/args';
import { binding as nb, type External } from './internal/binding';

/** The udmabuf device node. */
export const UDMABUF_PATH = '/dev/udmabuf';
/** UDMABUF_FLAGS_CLOEXEC; the kernel ignores every other flag bit. */
export const UDMABUF_FLAGS_CLOEXEC = 1;

/** memfd seals (fcntl F_ADD_SEALS): F_SEAL_SEAL, _SHRINK, _GROW, _WRITE, _FUTURE_WRITE. */
export type MemfdSeal = 'seal' | 'shrink' | 'grow' | 'write' | 'future-write';
const SEAL_BITS: ReadonlyArray<[MemfdSeal, number]> = [
  ['seal', 0x1],
  ['shrink', 0x2],
  ['grow', 0x4],
  ['write', 0x8],
  ['future-write', 0x10],
];

function toSeals(name: string, v: unknown): number {
  if (!Array.isArray(v)) throw invalidArgType(name, 'an array of seal names', v);
  let mask = 0;
  for (const s of v) {
    const bit = SEAL_BITS.find(([n]) => n === s);
    if (!bit) throw invalidArgValue(name, `must contain only ${SEAL_BITS.map(([n]) => `'${n}'`).join(', ')}`, s);
    mask |= bit[1];
  }
  return mask;
}

function toOpts(name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidArgType(name, 'of type object', v);
  return v as Record<string, unknown>;
}

function toFd(name: string, v: unknown): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'a Memfd or a file descriptor number', v);
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw outOfRange(name, 'a non-negative 32-bit integer', v);
  return v;
}

function toCloexec(name: string, v: unknown): number {
  if (v === undefined) return UDMABUF_FLAGS_CLOEXEC;
  if (typeof v !== 'boolean') throw invalidArgType(name, 'of type boolean', v);
  return v ? UDMABUF_FLAGS_CLOEXEC : 0;
}

const kMemfd = Symbol('dmabuf.memfd');

export interface MemfdOptions {
  /** The memfd's name (shown as /memfd:<name> in /proc/<pid>/fd); default 'dmabuf-udmabuf'. */
  name?: string;
  /** Seals added right after ftruncate. Default ['shrink'], what udmabuf requires; [] for none. */
  seals?: readonly MemfdSeal[];
}

// Brand check: the handle is read from the private slot of a real Memfd;
// anything else is a TypeError (ERR_INVALID_ARG_TYPE), never an EBADF.
let isMemfd!: (v: unknown) => v is Memfd;
let memfdSlot!: (v: unknown) => External | null;
function memfdHandle(v: unknown, op: string): External {
  const h = memfdSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'memfd is closed', op);
  return h;
}

/**
 * A sealable memfd: memfd_create(MFD_ALLOW_SEALING | MFD_CLOEXEC), ftruncate
 * to its size, F_ADD_SEALS. Read and write it with `fs.readSync` /
 * `fs.writeSync(memfd.fd, ...)`; udmabufCreate() shares its pages.
 */
export class Memfd implements Disposable {
  readonly name: string;
  #h: External | null;
  static {
    isMemfd = (v): v is Memfd => typeof v === 'object' && v !== null && #h in v;
    memfdSlot = (v) => {
      if (!isMemfd(v)) throw invalidArgType('this', 'an instance of Memfd', v);
      return v.#h;
    };
  }

  /** @internal use createMemfd() */
  constructor(token: symbol, h: External, name: string) {
    if (token !== kMemfd) throw new TypeError('Memfd objects come from createMemfd()');
    this.#h = h;
    this.name = name;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return memfdSlot(this) === null;
  }

  /** The file descriptor (owned by this object; close() closes it). */
  get fd(): number {
    return nb.memfdFd(memfdHandle(this, 'fd'));
  }

  /** The file size in bytes (fstat). */
  get size(): number {
    return Number(nb.memfdSize(memfdHandle(this, 'fstat')));
  }

  /** The seals in place (F_GET_SEALS). */
  get seals(): MemfdSeal[] {
    const mask = nb.memfdSeals(memfdHandle(this, 'fcntl(F_GET_SEALS)'));
    return SEAL_BITS.filter(([, bit]) => mask & bit).map(([n]) => n);
  }

  /** F_ADD_SEALS. After 'seal' no more can be added (EPERM). */
  addSeals(seals: readonly MemfdSeal[]): void {
    memfdSlot(this);
    const mask = toSeals('seals', seals);
    nb.memfdAddSeals(memfdHandle(this, 'fcntl(F_ADD_SEALS)'), mask);
  }

  /** Closes the fd. Idempotent. A udmabuf made from it keeps its pages. */
  close(): void {
    const h = memfdSlot(this);
    if (!h) return;
    this.#h = null;
    nb.memfdClose(h);
  }
  dispose(): void {
    Memfd.prototype.close.call(this);
  }
  [Symbol.dispose](): void {
    Memfd.prototype.close.call(this);
  }
}

/** A new memfd of `size` bytes (zero-filled), sealed with `opts.seals` (default ['shrink']). */
export function createMemfd(size: number | bigint, opts?: MemfdOptions): Memfd {
  const n = toU64('size', size);
  const o = toOpts('opts', opts);
  let name = 'dmabuf-udmabuf';
  if (o.name !== undefined) {
    if (typeof o.name !== 'string') throw invalidArgType('opts.name', 'of type string', o.name);
    name = o.name;
  }
  const seals = o.seals === undefined ? 0x2 : toSeals('opts.seals', o.seals);
  return new Memfd(kMemfd, nb.memfdCreate(name, n, seals), name);
}

export interface UdmabufOptions {
  /** Byte offset into the memfd (default 0; must be page aligned, else EINVAL). */
  offset?: number | bigint;
  /** Bytes (page aligned, else EINVAL). Default: the rest of the memfd; required for a raw fd. */
  size?: number | bigint;
  /** UDMABUF_FLAGS_CLOEXEC on the new fd (default true). */
  cloexec?: boolean;
}

/** One range of UDMABUF_CREATE_LIST. */
export interface UdmabufRange {
  memfd: Memfd | number;
  offset?: number | bigint;
  size?: number | bigint;
}

function toRange(name: string, memfd: unknown, offset: unknown, size: unknown): [number, bigint, bigint] {
  const off = offset === undefined ? 0n : toU64(`${name}.offset`, offset);
  if (isMemfd(memfd)) {
    const fd = memfd.fd; // EBADF once closed
    if (size !== undefined) return [fd, off, toU64(`${name}.size`, size)];
    const total = BigInt(memfd.size);
    return [fd, off, total > off ? total - off : 0n];
  }
  const fd = toFd(name === 'opts' ? 'memfd' : `${name}.memfd`, memfd);
  return [fd, off, toU64(`${name}.size`, size)];
}

/**
 * UDMABUF_CREATE: `size` bytes of `memfd` from `offset`, as a dma-buf
 * (backend 'kernel', exporterName 'udmabuf', O_RDWR). Its pages are the
 * memfd's: writes through either side show on the other. No /dev/udmabuf:
 * ENOENT; no access: EACCES (both name the node); bad seals or ranges: EINVAL
 * from 'UDMABUF_CREATE'; not a memfd: EBADFD.
 */
export function udmabufCreate(memfd: Memfd | number, opts?: UdmabufOptions): DmaBuf {
  const o = toOpts('opts', opts);
  const [fd, offset, size] = toRange('opts', memfd, o.offset, o.size);
  const flags = toCloexec('opts.cloexec', o.cloexec);
  return wrapDmaBuf(nb.udmabufCreate(fd, offset, size, flags));
}

/**
 * UDMABUF_CREATE_LIST: the ranges, in order, as one dma-buf. One bad range
 * fails the whole list; an empty list or more than list_limit (1024) ranges is
 * the kernel's EINVAL.
 */
export function udmabufCreateList(ranges: readonly UdmabufRange[], opts?: { cloexec?: boolean }): DmaBuf {
  if (!Array.isArray(ranges)) throw invalidArgType('ranges', 'an array', ranges);
  const o = toOpts('opts', opts);
  const flags = toCloexec('opts.cloexec', o.cloexec);
  const fds: number[] = [];
  const offsets: bigint[] = [];
  const sizes: bigint[] = [];
  for (let i = 0; i < ranges.length; i++) {
    const name = `ranges[${i}]`;
    const r: unknown = ranges[i];
    if (r === undefined) throw invalidArgType(name, 'of type object', r);
    const ro = toOpts(name, r);
    const [fd, off, size] = toRange(name, ro.memfd, ro.offset, ro.size);
    fds.push(fd);
    offsets.push(off);
    sizes.push(size);
  }
  return wrapDmaBuf(nb.udmabufCreateList(fds, offsets, sizes, flags));
}

/** Whether /dev/udmabuf exists and this process may open it read-write. */
export function udmabufAvailable(): boolean {
  try {
    fs.accessSync(UDMABUF_PATH, fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
