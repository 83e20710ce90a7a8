// `dmabuf bench` rows for passing buffers between processes: a DmaBuf and a
// SyncFile sent through an FdChannel to a child process that rebuilds them,
// closes them and answers, against the floor measured in the same run: the
// same round trip of a plain message over a Unix socket (Node's child_process
// IPC channel, a socketpair with JSON messages, to the same child).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { BenchOptions, BenchRow } from './bench';
import { FdChannel } from './fd_channel';
import { Fence } from './fence';
import { openHeap } from './heap';
import { SyncFile } from './sync_file';

/** A row before lib/bench.ts gives it its id, group and status. */
type Row = Omit<BenchRow, 'id' | 'group' | 'status'>;

export const FD_CHANNEL_ROW = 'JS FdChannel round trip to a child: DmaBuf + SyncFile sent, rebuilt, closed, answered';
const FLOOR_NAME = 'a plain message round trip over a Unix socket (child_process IPC)';

// The child: echoes IPC messages, and answers each FdChannel message after
// rebuilding and closing its attachments.
const CHILD = `
const { FdChannel } = require(process.env.DMABUF_BENCH_PKG);
const ch = FdChannel.fromFd(3);
process.on('message', (m) => process.send(m));
(async () => {
  for await (const { message, attachments } of ch) {
    for (const a of attachments) a.close();
    await ch.send(message);
  }
  process.disconnect();
})();
`;

function median(xs: number[]): number {
  xs.sort((a, b) => a - b);
  return xs[xs.length >> 1]!;
}

/** The FdChannel round-trip row if opts.filter matches it (median of opts.ms rounds, at least 50). */
export async function fdChannelRows(opts: BenchOptions): Promise<Row[]> {
  if (!FD_CHANNEL_ROW.includes(opts.filter ?? '')) return [];
  const iters = Math.max(50, Math.round(opts.ms ?? 150));
  const [mine, theirs] = FdChannel.pair();
  const child = spawn(process.execPath, ['-e', CHILD], {
    stdio: ['ignore', 'ignore', 'inherit', theirs.fd, 'ipc'],
    env: { ...process.env, DMABUF_BENCH_PKG: path.join(__dirname, 'index.js') },
  });
  theirs.close();
  const heap = openHeap('system');
  const buf = heap.alloc(4096);
  const fence = Fence.stub();
  const sf = SyncFile.create(fence);
  void sf.fd; // the sync_file's fd exists before timing (made once)
  try {
    const ipc = (i: number): Promise<void> =>
      new Promise((resolve) => {
        child.once('message', () => resolve());
        child.send({ i });
      });
    const channel = async (i: number): Promise<void> => {
      await mine.send({ i }, [buf, sf]);
      await mine.receive();
    };
    const time = async (op: (i: number) => Promise<void>): Promise<number> => {
      const lat: number[] = [];
      for (let i = -10; i < iters; i++) {
        const t0 = process.hrtime.bigint();
        await op(i);
        if (i >= 0) lat.push(Number(process.hrtime.bigint() - t0));
      }
      return median(lat);
    };
    // Interleaved halves, so a slow moment of the machine lands on both.
    const a1 = await time(ipc);
    const b1 = await time(channel);
    const a2 = await time(ipc);
    const b2 = await time(channel);
    const floor = Math.min(a1, a2);
    const value = Math.min(b1, b2);
    return [
      {
        name: FD_CHANNEL_ROW,
        value: value / 1000,
        unit: 'us',
        floorName: FLOOR_NAME,
        floor: floor / 1000,
        ratio: value / floor,
        target: '',
        met: null,
        note: `median of ${iters}, best of 2; 2 fds per message (the buffer's memfd and the sync_file's socket)`,
      },
    ];
  } finally {
    mine.close();
    child.kill();
    for (const x of [sf, buf, heap]) x.close();
    fence.dispose();
  }
}
