// `dmabuf probe` / probe(): what a node's kernel offers for dma-buf work, found
// by trying each thing (open, ioctl, alloc), never by reading a version number.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openHeap } from './heap';
import { SwSyncTimeline, SyncFile } from './sync_file';
import { createMemfd, udmabufCreate, UDMABUF_PATH } from './udmabuf';
import { DmaBuf } from './dma_buf';
import { Fence } from './fence';

/** 'ok', an errno name (ENOENT, EACCES, ENOTTY, ...), 'not mounted' (debugfs), 'untested' or 'error' (detail says why). */
export type ProbeResult = string;

export interface ProbeCheck {
  /** heap, udmabuf, debugfs, sw_sync, sync_file, dma-buf, drm, emulation */
  area: string;
  /** What was tried: a heap's name, a node's path, an ioctl. */
  name: string;
  result: ProbeResult;
  path?: string;
  /** The node's mode (e.g. 'crw-------') and owner ('root:root'), when it exists. */
  mode?: string;
  owner?: string;
  detail?: string;
}

export interface ProbeReport {
  kernel: { release: string; arch: string; version: string };
  user: { uid: number; gid: number };
  checks: ProbeCheck[];
}

const HEAP_DIR = '/dev/dma_heap';
const DEBUGFS = '/sys/kernel/debug';
const SW_SYNC = '/sys/kernel/debug/sync/sw_sync';
const DRI = '/dev/dri';

/** The errno name of a failure, or 'error' for anything else (a bug: the detail says what). */
function code(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' && /^E[A-Z0-9]+$/.test(c) ? c : c === 'not mounted' ? c : 'error';
}

/** Runs fn; 'ok', or the error's code (and its message as the detail). */
function attempt(fn: () => void): { result: string; detail?: string } {
  try {
    fn();
    return { result: 'ok' };
  } catch (e) {
    return { result: code(e), detail: (e as Error)?.message ?? String(e) };
  }
}

function names(file: string): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined) m.set(Number(id), name);
    }
  } catch {
    // no passwd/group: numeric ids
  }
  return m;
}

function modeString(st: fs.Stats): string {
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isDirectory() ? 'd' : '-';
  const bits = 'rwxrwxrwx';
  let s = type;
  for (let i = 0; i < 9; i++) s += st.mode & (1 << (8 - i)) ? bits[i] : '-';
  return s;
}

/** Opens `p` read-write (as the ioctls need); the result and the node's mode and owner. */
function tryNode(area: string, name: string, p: string, users: Map<number, string>, groups: Map<number, string>): ProbeCheck {
  const check: ProbeCheck = { area, name, path: p, result: 'ok' };
  try {
    const st = fs.statSync(p);
    check.mode = modeString(st);
    check.owner = `${users.get(st.uid) ?? st.uid}:${groups.get(st.gid) ?? st.gid}`;
  } catch {
    // reported by the open below
  }
  const r = attempt(() => fs.closeSync(fs.openSync(p, fs.constants.O_RDWR | 0o2000000 /* O_CLOEXEC */)));
  check.result = r.result;
  return check;
}

/** Probes this machine. Never throws for a missing or refused capability: each is a row. */
export function probe(): ProbeReport {
  const users = names('/etc/passwd');
  const groups = names('/etc/group');
  const checks: ProbeCheck[] = [];
  const add = (c: ProbeCheck) => checks.push(c);

  // Heaps: each node under /dev/dma_heap, opened, then one page allocated.
  let heapNames: string[] = [];
  try {
    heapNames = fs.readdirSync(HEAP_DIR).sort();
    if (heapNames.length === 0) add({ area: 'heap', name: '(none)', path: HEAP_DIR, result: 'ENOENT', detail: `${HEAP_DIR} is empty` });
  } catch (e) {
    const why = code(e) === 'ENOENT' ? `no ${HEAP_DIR}: no dma-heaps in this kernel (CONFIG_DMABUF_HEAPS)` : (e as Error).message;
    add({ area: 'heap', name: '(none)', path: HEAP_DIR, result: code(e), detail: why });
  }
  let kernelBuf: DmaBuf | null = null;
  for (const name of heapNames) {
    const c = tryNode('heap', name, path.join(HEAP_DIR, name), users, groups);
    if (c.result === 'ok') {
      const a = attempt(() => {
        const heap = openHeap(name, { backend: 'kernel' });
        try {
          const b = heap.alloc(4096);
          if (!kernelBuf) kernelBuf = b;
          else b.close();
        } finally {
          heap.close();
        }
      });
      c.detail = a.result === 'ok' ? 'DMA_HEAP_IOCTL_ALLOC of one page: ok' : `DMA_HEAP_IOCTL_ALLOC: ${a.detail}`;
      if (a.result !== 'ok') c.result = a.result;
    }
    add(c);
  }

  // udmabuf: open, then UDMABUF_CREATE from a sealed memfd.
  const u = tryNode('udmabuf', 'udmabuf', UDMABUF_PATH, users, groups);
  if (u.result === 'ok') {
    const a = attempt(() => {
      const m = createMemfd(4096);
      try {
        udmabufCreate(m).close();
      } finally {
        m.close();
      }
    });
    u.detail = a.result === 'ok' ? 'UDMABUF_CREATE of a sealed memfd: ok' : `UDMABUF_CREATE: ${a.detail}`;
    u.result = a.result;
  }
  add(u);

  // debugfs: listing it is the test (absent, not mounted, or no permission).
  const d = attempt(() => {
    const entries = fs.readdirSync(DEBUGFS);
    if (entries.length === 0) throw Object.assign(new Error(`${DEBUGFS} is empty: debugfs is not mounted`), { code: 'not mounted' });
  });
  add({ area: 'debugfs', name: 'debugfs', path: DEBUGFS, ...d });
  const bi = attempt(() => fs.readFileSync(path.join(DEBUGFS, 'dma_buf', 'bufinfo')));
  add({ area: 'debugfs', name: 'dma_buf/bufinfo', path: path.join(DEBUGFS, 'dma_buf', 'bufinfo'), ...bi });

  // sw_sync: a timeline and a fence on it.
  let tl: SwSyncTimeline | null = null;
  let points: SyncFile[] = [];
  const sw = tryNode('sw_sync', 'sw_sync', SW_SYNC, users, groups);
  if (sw.result === 'ok') {
    const a = attempt(() => {
      tl = new SwSyncTimeline({ backend: 'kernel' });
      points = [tl.createFence(1), tl.createFence(2)];
    });
    sw.result = a.result;
    sw.detail = a.result === 'ok' ? 'SW_SYNC_IOC_CREATE_FENCE: ok' : a.detail!;
  }
  add(sw);

  // dma-buf <-> sync_file (6.0+), on a buffer from a kernel heap.
  let exported: SyncFile | null = null;
  const buf = kernelBuf as DmaBuf | null;
  if (buf) {
    const ex = attempt(() => {
      exported = buf.exportSyncFile('read');
    });
    add({ area: 'dma-buf', name: 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE', ...ex });
    const src: SyncFile | null = points[0] ?? exported;
    if (src) {
      const im = attempt(() => buf.importSyncFile(src, 'read'));
      add({ area: 'dma-buf', name: 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE', ...im });
    } else add({ area: 'dma-buf', name: 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE', result: 'untested', detail: 'no kernel sync_file to import (no sw_sync, and export failed)' });
  } else {
    for (const n of ['DMA_BUF_IOCTL_EXPORT_SYNC_FILE', 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE'])
      add({ area: 'dma-buf', name: n, result: 'untested', detail: 'no kernel dma-buf to try it on (no usable heap)' });
  }

  // sync_file ioctls, on sw_sync fences or else on an exported sync_file.
  const a0: SyncFile | null = points[0] ?? exported;
  const a1: SyncFile | null = points[1] ?? exported;
  if (a0 && a1) {
    let merged: SyncFile | null = null;
    add({ area: 'sync_file', name: 'SYNC_IOC_MERGE', ...attempt(() => (merged = SyncFile.merge('probe', a0, a1))) });
    add({ area: 'sync_file', name: 'SYNC_IOC_FILE_INFO', ...attempt(() => void a0.info()) });
    add({ area: 'sync_file', name: 'SYNC_IOC_SET_DEADLINE', ...attempt(() => a0.setDeadline(1_000_000n)) });
    if (tl) add({ area: 'sync_file', name: 'SW_SYNC_GET_DEADLINE', ...attempt(() => void (tl as SwSyncTimeline).getDeadline(a0)) });
    else add({ area: 'sync_file', name: 'SW_SYNC_GET_DEADLINE', result: 'untested', detail: 'needs sw_sync' });
    (merged as SyncFile | null)?.close();
  } else {
    for (const n of ['SYNC_IOC_MERGE', 'SYNC_IOC_FILE_INFO', 'SYNC_IOC_SET_DEADLINE', 'SW_SYNC_GET_DEADLINE'])
      add({ area: 'sync_file', name: n, result: 'untested', detail: 'no kernel sync_file to try it on (needs sw_sync or a dma-buf heap)' });
  }
  for (const p of points) p.close();
  (exported as SyncFile | null)?.close();
  (tl as SwSyncTimeline | null)?.close();
  buf?.close();

  // DRM: render nodes (and cards), each opened.
  let dri: string[] = [];
  try {
    dri = fs.readdirSync(DRI).filter((n) => /^(renderD|card)\d+$/.test(n)).sort();
    if (dri.length === 0) add({ area: 'drm', name: '(none)', path: DRI, result: 'ENOENT', detail: `no render nodes in ${DRI}` });
  } catch (e) {
    add({ area: 'drm', name: '(none)', path: DRI, result: code(e), detail: code(e) === 'ENOENT' ? `no ${DRI}: no DRM driver loaded` : (e as Error).message });
  }
  for (const n of dri) add(tryNode('drm', n, path.join(DRI, n), users, groups));

  // The emulation: a fence and an emulated heap buffer; `dmabuf run` where it ships.
  add({
    area: 'emulation',
    name: 'fence+heap',
    ...attempt(() => {
      const f = new Fence();
      f.signal();
      f.dispose();
      const h = openHeap('system');
      h.alloc(4096).close();
      h.close();
    }),
  });
  const run = attempt(() => require.resolve('./cli/run.js'));
  add({
    area: 'emulation',
    name: 'dmabuf run',
    result: run.result === 'ok' ? 'ok' : 'ENOENT',
    detail: run.result === 'ok' ? 'the run command is installed' : 'this version has no `dmabuf run` command',
  });

  return {
    kernel: { release: os.release(), arch: os.machine?.() ?? process.arch, version: os.version() },
    user: { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 },
    checks,
  };
}

/** The report as a table: one row a check. */
export function formatProbe(r: ProbeReport): string {
  const rows = r.checks.map((c) => [c.area, c.name, c.result, [c.mode, c.owner].filter(Boolean).join(' '), c.detail ?? c.path ?? '']);
  const head = ['AREA', 'CHECK', 'RESULT', 'MODE OWNER', 'DETAIL'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return (
    `kernel ${r.kernel.release} ${r.kernel.arch} (uid ${r.user.uid})\n` +
    [line(head), ...rows.map(line)].join('\n') +
    '\n'
  );
}
