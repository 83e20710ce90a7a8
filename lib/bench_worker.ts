// `dmabuf bench` row for a fence signalled on another thread: how long after a
// worker thread signals a Fence the main thread's `await fence.wait()` resumes,
// against the floor measured in the same run on the same two threads: the
// worker posting on a MessagePort and main's Promise on its 'message' resolving.
// Both are started the same way: the worker blocks in Atomics.wait on a flag in
// a SharedArrayBuffer and main takes t0 just before it sets the flag
// (Atomics.store + Atomics.notify), so the message that set the round up is
// not in the time; both measure "the worker wakes and notifies main -> main's
// await resumes".
import * as path from 'node:path';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { BenchOptions, BenchRow } from './bench';
import { Fence } from './fence';

/** A row before lib/bench.ts gives it its id, group and status. */
type Row = Omit<BenchRow, 'id' | 'group' | 'status'>;

export const WORKER_SIGNAL_ROW = 'JS worker signal -> await fence.wait() resumes (p50)';
const FLOOR_NAME = 'MessagePort round trip on the same threads (p50)';
const TARGET = 1.2;
const WARMUP = 10;
/** Stored in the flag at teardown: every `seq` the worker may be waiting for is below it. */
const RELEASE = 0x7fffffff;

/** The package's CommonJS entry: beside this file in dist/, the built one from the TypeScript sources (vitest). */
function packageEntry(): string {
  return path.extname(__filename) === '.ts' ? path.resolve(__dirname, '..', 'dist', 'index.js') : path.join(__dirname, 'index.js');
}

// The worker: for each round, adopts the fence main exported (if any), says it
// is ready, blocks until main sets the flag to the round's number, then
// signals the fence, or posts on the port for a floor round. A round's fence
// is disposed when the next message comes, so nothing else runs on the worker
// while main's await resumes.
const WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { Fence } = require(w.pkg);
const flag = new Int32Array(w.flag);
let prev = null;
parentPort.on('message', (m) => {
  prev?.dispose();
  prev = null;
  if (m.done) {
    parentPort.postMessage('done');
    parentPort.close();
    return;
  }
  const f = m.handle === undefined ? null : Fence.importHandle(m.handle);
  parentPort.postMessage(m.seq);
  while (Atomics.load(flag, 0) < m.seq) Atomics.wait(flag, 0, m.seq - 1);
  if (f === null) {
    w.port.postMessage(m.seq);
  } else {
    f.signal();
    prev = f;
  }
});
parentPort.postMessage('loaded');
`;

/** The worker's messages in order; a failure (error, exit) rejects what is awaited and runs onFail. */
class Peer {
  readonly worker: Worker;
  failed: Error | null = null;
  onFail: (() => void) | null = null;
  #queue: unknown[] = [];
  #waiting: { resolve: (m: unknown) => void; reject: (e: Error) => void } | null = null;
  #exited = false;

  constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (m: unknown) => {
      const w = this.#waiting;
      this.#waiting = null;
      if (w) w.resolve(m);
      else this.#queue.push(m);
    });
    worker.on('error', (e: Error) => this.#fail(e));
    worker.on('exit', (code: number) => {
      this.#exited = true;
      this.#fail(new Error(`the worker exited with code ${code}`));
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  #fail(e: Error): void {
    this.failed ??= e;
    const w = this.#waiting;
    this.#waiting = null;
    w?.reject(this.failed);
    this.onFail?.();
  }

  next(): Promise<unknown> {
    if (this.#queue.length) return Promise.resolve(this.#queue.shift());
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }
}

function median(xs: number[]): number {
  xs.sort((a, b) => a - b);
  return xs[xs.length >> 1]!;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function skipped(why: string): Row[] {
  return [{ name: WORKER_SIGNAL_ROW, value: 0, unit: '', floorName: '', floor: 0, ratio: 0, target: '', met: null, note: `skipped: ${why}` }];
}

/** Starts the worker and waits until it has loaded the package; null and the reason when it cannot. */
async function startPeer(flag: SharedArrayBuffer, port: MessagePort): Promise<{ peer: Peer } | { why: string }> {
  let worker: Worker;
  try {
    worker = new Worker(WORKER, { eval: true, workerData: { pkg: packageEntry(), flag, port }, transferList: [port] });
  } catch (e) {
    return { why: `worker threads cannot start: ${(e as Error).message}` };
  }
  const peer = new Peer(worker);
  try {
    const m = await peer.next();
    if (m !== 'loaded') throw new Error(`unexpected first message ${String(m)}`);
    return { peer };
  } catch (e) {
    await worker.terminate();
    return { why: `the worker thread did not start: ${(e as Error).message}` };
  }
}

/**
 * The worker-signal row if opts.filter matches it: the median of max(50, 2 x
 * opts.ms) fence rounds and as many floor rounds, interleaved, after 10 of each
 * to warm up.
 */
export async function workerSignalRows(opts: BenchOptions): Promise<Row[]> {
  if (!WORKER_SIGNAL_ROW.includes(opts.filter ?? '')) return [];
  const rounds = Math.max(50, Math.round((opts.ms ?? 150) * 2));
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  let peer: Peer | null = null;
  try {
    const started = await startPeer(flag.buffer as SharedArrayBuffer, port2);
    if ('why' in started) return skipped(started.why);
    peer = started.peer;
    const p = peer;
    let seq = 0;
    // Main's end of the port: one listener for the whole run, resolving the round's Promise.
    let onPort: ((m: unknown) => void) | null = null;
    port1.on('message', (m: unknown) => onPort?.(m));
    const fire = (): bigint => {
      const t0 = process.hrtime.bigint();
      Atomics.store(flag, 0, seq);
      Atomics.notify(flag, 0);
      return t0;
    };
    const ready = async (): Promise<void> => {
      const m = await p.next();
      if (m !== seq) throw new Error(`the worker answered ${String(m)} for round ${seq}`);
    };
    const fenceRound = async (): Promise<number> => {
      const f = new Fence();
      try {
        p.worker.postMessage({ seq: ++seq, handle: f.exportHandle() });
        await ready();
        const resumed = f.wait();
        p.onFail = () => f.dispose(); // the wait rejects rather than hangs
        await turn(); // the waiter is registered and the loop idle before the worker fires
        const t0 = fire();
        await resumed;
        return Number(process.hrtime.bigint() - t0);
      } finally {
        p.onFail = null;
        f.dispose();
      }
    };
    const portRound = async (): Promise<number> => {
      p.worker.postMessage({ seq: ++seq });
      await ready();
      try {
        const posted = new Promise((resolve, reject) => {
          onPort = resolve;
          p.onFail = () => reject(p.failed);
        });
        await turn();
        const t0 = fire();
        await posted;
        return Number(process.hrtime.bigint() - t0);
      } finally {
        onPort = null;
        p.onFail = null;
      }
    };
    const fences: number[] = [];
    const floors: number[] = [];
    for (let i = -WARMUP; i < rounds; i++) {
      // Interleaved, alternating which goes first, so a slow moment of the machine lands on both.
      let ours: number;
      let theirs: number;
      if ((i & 1) === 0) {
        ours = await fenceRound();
        theirs = await portRound();
      } else {
        theirs = await portRound();
        ours = await fenceRound();
      }
      if (i >= 0) {
        fences.push(ours);
        floors.push(theirs);
      }
    }
    const value = median(fences);
    const floor = median(floors);
    const ratio = value / floor;
    // The worker disposes the last round's fence, then main lets it go.
    p.worker.postMessage({ done: true });
    if ((await p.next()) !== 'done') throw new Error('the worker did not finish');
    return [
      {
        name: WORKER_SIGNAL_ROW,
        value,
        unit: 'ns',
        floorName: FLOOR_NAME,
        floor,
        ratio,
        target: `<= ${TARGET}`,
        met: ratio <= TARGET,
        note: `p50 of ${rounds} rounds each, interleaved; from Atomics.notify of the worker blocked in Atomics.wait to main's await resuming`,
      },
    ];
  } catch (e) {
    throw peer?.failed ?? e;
  } finally {
    port1.close();
    if (peer) {
      Atomics.store(flag, 0, RELEASE); // a worker still blocked on the flag goes on
      Atomics.notify(flag, 0);
      if (!peer.exited) await peer.worker.terminate();
    }
  }
}
