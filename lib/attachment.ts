// dma_buf_attachment for JavaScript: a device's use of an emulated dma-buf.
// DmaBuf.attach() makes one: a static importer by default; a dynamic one with
// `moveNotify` (called on this thread whenever the exporter moves or revokes
// the buffer) or `peer2peer`; pinned with `pinned` (heap buffers: a no-op pin;
// revocable exporters refuse it with EOPNOTSUPP, as VFIO does since v6.19).
import { DmaBufError } from './errors';
import { invalidArgType } from './internal/args';
import { binding, type External } from './internal/binding';
import { reserveRepeating, unreserve } from './internal/dispatch';
import { toBool, toChoice, toOpts } from './internal/options';

/** enum dma_data_direction, as the importer maps. */
export type DmaDirection = 'bidirectional' | 'to-device' | 'from-device';
const DIRECTIONS: readonly DmaDirection[] = ['bidirectional', 'to-device', 'from-device'];

export interface AttachOptions {
  /** Pin the buffer for this importer (dma_buf_pin): it cannot honour moves. Default false. */
  pinned?: boolean;
  /** move_notify: called (on this thread) each time the exporter moves or revokes the buffer. */
  moveNotify?: (attachment: Attachment) => void;
  /** allow_peer2peer: the importer can reach device memory (needed by VFIO MMIO buffers). Default false. */
  peer2peer?: boolean;
  /** The device name bufinfo lists (default 'node'). */
  device?: string;
}

/** One scatterlist entry: a physically contiguous run as the device sees it. */
export interface SgEntry {
  phys: bigint;
  length: number;
}

/** A mapped scatterlist (dma_buf_map_attachment's sg_table); give it back with unmap(). */
export interface SgTable {
  readonly entries: readonly SgEntry[];
  /** Mapped with DMA_ATTR_CC_SHARED (system_cc_shared buffers). */
  readonly ccShared: boolean;
  readonly direction: DmaDirection;
}

/** Counters of one attachment. */
export interface AttachmentStats {
  /** move_notify calls the exporter made. */
  moves: number;
  /** Cache maintenance the exporter did for this device at beginCpuAccess / endCpuAccess. */
  cpuSyncs: number;
  deviceSyncs: number;
  /** Live map() results. */
  mapped: number;
}

interface ParsedAttach {
  pinned: boolean;
  peer2peer: boolean;
  device: string;
  moveNotify: ((a: Attachment) => void) | undefined;
}

/** @internal Validates DmaBuf.attach()'s options. */
export function parseAttachOptions(opts: unknown): ParsedAttach {
  const o = toOpts('opts', opts);
  const pinned = toBool('opts.pinned', o.pinned, false);
  const peer2peer = toBool('opts.peer2peer', o.peer2peer, false);
  if (o.moveNotify !== undefined && typeof o.moveNotify !== 'function') {
    throw invalidArgType('opts.moveNotify', 'of type function', o.moveNotify);
  }
  const device = o.device === undefined ? 'node' : o.device;
  if (typeof device !== 'string') throw invalidArgType('opts.device', 'of type string', device);
  return { pinned, peer2peer, device, moveNotify: o.moveNotify as ParsedAttach['moveNotify'] };
}

const kAttach = Symbol('dmabuf.attachment');
// An attachment collected without detach(): its native handle's finalizer
// detaches; this forgets its move_notify registration.
const unreserveOnGc = new FinalizationRegistry<number>((id) => unreserve(id));

/** @internal Attaches to the buffer behind `buf` (an emulated, open DmaBuf's handle). */
export function createAttachment(buf: External, o: ParsedAttach): Attachment {
  let target: WeakRef<Attachment> | null = null;
  const fn = o.moveNotify;
  const id = fn
    ? reserveRepeating(() => {
        const a = target?.deref();
        if (a && !a.detached) fn(a);
      })
    : 0;
  let r: External;
  try {
    r = binding.bufAttach(buf, o.device, o.pinned, o.peer2peer, id);
  } catch (e) {
    if (id) unreserve(id);
    throw e;
  }
  const a = new Attachment(kAttach, r, o, id);
  target = new WeakRef(a);
  if (id) unreserveOnGc.register(a, id, a);
  return a;
}

// Brand check: the handle is read from the private slot of a real Attachment;
// anything else is a TypeError (ERR_INVALID_ARG_TYPE), never an EBADF.
let attSlot!: (v: unknown) => External | null;
function attHandle(v: unknown, op: string): External {
  const h = attSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'the attachment is detached', op);
  return h;
}

/** A device's attachment to an emulated dma-buf (struct dma_buf_attachment). */
export class Attachment implements Disposable {
  /** Attached as a pinned importer. */
  readonly pinned: boolean;
  /** A dynamic importer (has move_notify or peer2peer, or is pinned). */
  readonly dynamic: boolean;
  readonly peer2peer: boolean;
  readonly device: string;
  #a: External | null;
  #notifyId: number;
  #maps = new Map<SgTable, number>();
  static {
    attSlot = (v) => {
      if (typeof v !== 'object' || v === null || !(#a in v)) throw invalidArgType('this', 'an instance of Attachment', v);
      return (v as Attachment).#a;
    };
  }

  /** @internal use DmaBuf.attach() */
  constructor(token: symbol, a: External, o: ParsedAttach, notifyId: number) {
    if (token !== kAttach) throw new TypeError('Attachment objects come from DmaBuf.attach()');
    this.#a = a;
    this.#notifyId = notifyId;
    this.pinned = o.pinned;
    this.peer2peer = o.peer2peer;
    this.device = o.device;
    this.dynamic = o.pinned || o.peer2peer || o.moveNotify !== undefined;
  }

  /** Whether detach() has run. */
  get detached(): boolean {
    return attSlot(this) === null;
  }

  /** The attachment's counters. */
  stats(): AttachmentStats {
    return binding.attInfo(attHandle(this, 'dma_buf_attachment'));
  }

  /** move_notify calls received so far. */
  get moves(): number {
    return Attachment.prototype.stats.call(this).moves;
  }

  /**
   * dma_buf_map_attachment: the buffer's scatterlist for the device. Works with
   * or without the buffer's resv held by this thread. A revoked buffer: ENODEV.
   */
  map(dir: DmaDirection = 'bidirectional'): SgTable {
    attSlot(this);
    const d = DIRECTIONS.indexOf(toChoice('dir', dir, DIRECTIONS, 'bidirectional'));
    const [mapId, entries, ccShared] = binding.attMap(attHandle(this, 'dma_buf_map_attachment'), d);
    const sgt: SgTable = Object.freeze({
      entries: Object.freeze(entries.map(([phys, length]) => Object.freeze({ phys, length }))),
      ccShared,
      direction: DIRECTIONS[d]!,
    });
    this.#maps.set(sgt, mapId);
    return sgt;
  }

  /** dma_buf_unmap_attachment for a table map() returned (EINVAL for anything else). */
  unmap(sgt: SgTable): void {
    attSlot(this);
    if (typeof sgt !== 'object' || sgt === null) throw invalidArgType('sgt', 'an SgTable from map()', sgt);
    const h = attHandle(this, 'dma_buf_unmap_attachment');
    const id = this.#maps.get(sgt);
    if (id === undefined) {
      throw new DmaBufError('EINVAL', 'not a live mapping of this attachment', 'dma_buf_unmap_attachment');
    }
    this.#maps.delete(sgt);
    binding.attUnmap(h, id);
  }

  /**
   * dma_buf_detach: unmaps what is still mapped, unpins, detaches. Idempotent.
   * EDEADLK while this thread holds the buffer's resv.
   */
  detach(): void {
    const a = attSlot(this);
    if (!a) return;
    binding.attDetach(a); // EDEADLK while this thread holds the buffer's resv
    this.#a = null;
    this.#maps.clear();
    if (this.#notifyId) {
      unreserve(this.#notifyId);
      unreserveOnGc.unregister(this);
    }
    binding.attDispose(a);
  }
  dispose(): void {
    Attachment.prototype.detach.call(this);
  }
  [Symbol.dispose](): void {
    Attachment.prototype.detach.call(this);
  }
}
