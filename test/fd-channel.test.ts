// FdChannel (issue 12): messages with fds over AF_UNIX SOCK_SEQPACKET sockets
// (lib/fd_channel.ts, native/kernel/fd_channel.cc). Emulated DmaBufs cross as
// their memfd, emulated SyncFiles as their exported fd (core/sync/sync_file_fd),
// plain fds as numbers the receiver owns; in-process, to child processes, to
// worker threads and through a listening socket. Every failure path gets its
// DmaBufError code and leaves /proc/self/fd as it was.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { DmaBuf, DmaBufError, Fence, FdChannel, FdChannelServer, SyncFile, openHeap } from '../lib';
import { binding as raw } from '../lib/internal/binding';
import { expectRejectsCode, fifo as fifoIn, openFds, settledFds, sleep } from './helpers';

const DIST = path.resolve(__dirname, '..', 'dist', 'index.js');
// Python (a foreign sender) starts without the ASan run's preloaded runtimes.
const pyEnv = { ...process.env };
delete pyEnv['LD_PRELOAD'];
const PYTHON = spawnSync('python3', ['-c', 'import socket, array'], { stdio: 'ignore', env: pyEnv }).status === 0;

/** Starts what keeps fds open for the process's life (the fence watcher's epoll) before fds are counted. */
async function warmUp(): Promise<void> {
  const f = new Fence();
  const sf = SyncFile.create(f);
  const [a, b] = FdChannel.pair();
  const sent = a.send('warm', [sf]);
  const got = await b.receive({ timeout: 10000 });
  await sent;
  const back = got.attachments[0] as SyncFile;
  const w = back.wait();
  f.signal();
  await w;
  back.close();
  sf.close();
  f.dispose();
  a.close();
  b.close();
  using buf = emulatedBuf(4096);
  buf.map();
  buf.close();
  await stableFds();
}

/** Waits until the fd count stays the same for a while (fences the watcher thread drops, GC'd handles). */
async function stableFds(): Promise<number> {
  let n = openFds();
  for (let same = 0, i = 0; same < 10 && i < 300; i++) {
    await sleep(10);
    const m = openFds();
    same = m === n ? same + 1 : 0;
    n = m;
  }
  return n;
}

function emulatedBuf(size: number, name?: string): DmaBuf {
  const heap = openHeap('system');
  const buf = heap.alloc(size);
  heap.close();
  if (name) buf.setName(name);
  return buf;
}

const dir = mkdtempSync(path.join(tmpdir(), 'dmabuf-fdch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const sockPath = (): string => path.join(dir, `s${seq++}.sock`);
/** A FIFO's two ends (non-blocking): a plain fd that works, to send as a number. */
const fifo = (): ReturnType<typeof fifoIn> => fifoIn(dir);


async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}
async function expectDmaBufRejection(p: Promise<unknown>, code: string): Promise<DmaBufError> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(DmaBufError);
  expect((e as DmaBufError).code).toBe(code);
  expect((e as DmaBufError).errno).toBeLessThan(0);
  return e as DmaBufError;
}

/** Whether a promise has settled (after letting pending callbacks run). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(20);
  return done;
}

interface Child {
  out: () => string;
  err: () => string;
  waitFor(s: string, ms?: number): Promise<void>;
  exit: Promise<number | null>;
  kill(): void;
}
/** `node -e script` with `fd` as its fd 3. */
function spawnNode(script: string, fd: number, shell?: string): Child {
  const args = shell ? ['-c', shell, process.execPath, script] : ['-e', script]; // $0 = node, $1 = script
  // The shell starts without the ASan run's preloaded runtimes; node gets them back.
  const env = shell ? { ...pyEnv, FDCH_PRELOAD: process.env['LD_PRELOAD'] ?? '' } : process.env;
  const child = spawn(shell ? '/bin/sh' : process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', fd], env });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return {
    out: () => out,
    err: () => err,
    async waitFor(s, ms = 20000) {
      const t0 = Date.now();
      while (!out.includes(s)) {
        if (Date.now() - t0 > ms) throw new Error(`child never said ${JSON.stringify(s)}; stdout: ${out}\nstderr: ${err}`);
        if (child.exitCode !== null) {
          await sleep(50);
          if (!out.includes(s)) throw new Error(`child exited ${child.exitCode} without ${JSON.stringify(s)}; stdout: ${out}\nstderr: ${err}`);
        }
        await sleep(10);
      }
    },
    exit,
    kill: () => child.kill('SIGKILL'),
  };
}

describe('FdChannel.pair()', () => {
  it('carries JSON messages in order, unicode and nesting intact; peer is this process', async () => {
    const [a, b] = FdChannel.pair();
    expect(a.fd).toBeGreaterThan(2);
    expect(b.fd).toBeGreaterThan(2);
    expect(a.closed).toBe(false);
    const peer = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(a.peer).toEqual(peer);
    expect(b.peer).toEqual(peer);
    const msgs = [
      { nested: { deep: [1, 2, { x: null, y: [true, false] }] }, n: -1.5e300 },
      'héllo wörld — ✓ 日本語 🎉 \u0000 "quotes" \\ \n',
      [],
      42,
      null,
      { s: '\ud83d\ude00'.repeat(100) },
    ];
    for (const m of msgs) await a.send(m);
    for (const m of msgs) {
      const r = await b.receive({ timeout: 10000 });
      expect(r.message).toEqual(m);
      expect(r.attachments).toEqual([]);
    }
    // And the other way.
    await b.send({ back: 'ok' });
    expect((await a.receive({ timeout: 10000 })).message).toEqual({ back: 'ok' });
    a.close();
    expect(a.closed).toBe(true);
    expect(a.fd).toBe(-1);
    a.close(); // idempotent
    b[Symbol.dispose]();
    expect(b.closed).toBe(true);
  });

  it('an emulated DmaBuf arrives over the same memory, with its size, name and exporter', async () => {
    await warmUp();
    const before = openFds();
    {
      using buf = emulatedBuf(8192, 'cam0');
      const exp = buf.exporterName;
      expect(exp).not.toBe('');
      const mine = new Uint8Array(buf.map());
      for (let i = 0; i < mine.length; i++) mine[i] = (i * 7) & 0xff;
      const [a, b] = FdChannel.pair();
      using _a = a;
      using _b = b;
      await a.send({ what: 'frame' }, [buf]);
      const r = await b.receive({ timeout: 10000 });
      expect(r.message).toEqual({ what: 'frame' });
      expect(r.attachments).toHaveLength(1);
      const got = r.attachments[0] as DmaBuf;
      expect(got).toBeInstanceOf(DmaBuf);
      expect(got.backend).toBe('emulated');
      expect(got.size).toBe(8192);
      expect(got.name).toBe('cam0');
      expect(got.exporterName).toBe(exp);
      expect(got.fd).not.toBe(buf.fd);
      const theirs = new Uint8Array(got.map());
      expect(Buffer.from(theirs).equals(Buffer.from(mine))).toBe(true);
      // Both ways: a write on either side is seen by the other.
      theirs[100] = 0xa5;
      expect(mine[100]).toBe(0xa5);
      mine[8191] = 0x5a;
      expect(theirs[8191]).toBe(0x5a);
      // No device attachments on a received buffer.
      let caught: unknown;
      try {
        got.attach();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(DmaBufError);
      expect((caught as DmaBufError).code).toBe('EOPNOTSUPP');
      got.close();
      // The sender's buffer is untouched by the receiver closing.
      expect(mine[8191]).toBe(0x5a);
    }
    expect(await settledFds(before)).toBe(before);
  });

  it("an emulated SyncFile arrives as a SyncFile following the sender's fence (status, error, timestamp)", async () => {
    await warmUp();
    const before = openFds();
    {
      const [a, b] = FdChannel.pair();
      using _a = a;
      using _b = b;
      const f = new Fence();
      const sf = SyncFile.create(f);
      await a.send('ok', [sf]);
      const got = (await b.receive({ timeout: 10000 })).attachments[0] as SyncFile;
      expect(got).toBeInstanceOf(SyncFile);
      expect(got.backend).toBe('emulated');
      expect(got.status).toBe(0);
      expect(got.isSignaled()).toBe(false);
      expect(await got.wait({ timeout: 50 })).toBe(false);
      const w = got.wait({ timeout: 20000 });
      f.signal();
      expect(await w).toBe(true);
      expect(got.status).toBe(1);
      expect(got.info().fences[0]!.timestampNs).toBe(f.timestamp);
      got.close();
      sf.close();
      f.dispose();

      // An error crosses too.
      const g = new Fence();
      const sg = SyncFile.create(g);
      await a.send('err', [sg]);
      const got2 = (await b.receive({ timeout: 10000 })).attachments[0] as SyncFile;
      g.setError(-110);
      g.signal();
      expect(await got2.wait({ timeout: 20000 })).toBe(true);
      expect(got2.status).toBe(-110);
      got2.close();
      sg.close();
      g.dispose();

      // Forwarded on (a received SyncFile sent again): still the sender's fence.
      const h = new Fence();
      const sh = SyncFile.create(h);
      await a.send('fwd', [sh]);
      const mid = (await b.receive({ timeout: 10000 })).attachments[0] as SyncFile;
      const [c, d] = FdChannel.pair();
      await c.send('fwd2', [mid]);
      mid.close();
      const end = (await d.receive({ timeout: 10000 })).attachments[0] as SyncFile;
      expect(end.status).toBe(0);
      const we = end.wait({ timeout: 20000 });
      h.setError(-71);
      h.signal();
      expect(await we).toBe(true);
      expect(end.status).toBe(-71);
      end.close();
      sh.close();
      h.dispose();
      c.close();
      d.close();

      // Already signalled before sending: signalled on arrival.
      const s3 = SyncFile.create(Fence.stub());
      await a.send('stub', [s3]);
      s3.close();
      const got3 = (await b.receive({ timeout: 10000 })).attachments[0] as SyncFile;
      expect(got3.isSignaled()).toBe(true);
      expect(got3.status).toBe(1);
      got3.close();
    }
    expect(await settledFds(before)).toBe(before);
  });

  it('plain fd numbers arrive as new fds the receiver owns, and they work', async () => {
    await warmUp();
    const before = openFds();
    const p = fifo();
    const [a, b] = FdChannel.pair();
    await a.send({ pipe: 'write end' }, [p.wr]);
    const r = await b.receive({ timeout: 10000 });
    const fd = r.attachments[0] as number;
    expect(typeof fd).toBe('number');
    expect(fd).not.toBe(p.wr);
    expect(fstatSync(fd).isFIFO()).toBe(true);
    // The sender's fd is still its own.
    writeSync(p.wr, 'abc');
    writeSync(fd, 'def');
    closeSync(fd);
    const got = Buffer.alloc(16);
    const n = readSync(p.rd, got);
    expect(got.subarray(0, n).toString()).toBe('abcdef');
    p.close();
    a.close();
    b.close();
    expect(await settledFds(before)).toBe(before);
  });

  it('a mixed list keeps its order and kinds; 253 fds in one message is fine', async () => {
    await warmUp();
    const before = openFds();
    {
      const [a, b] = FdChannel.pair();
      using _a = a;
      using _b = b;
      using b1 = emulatedBuf(4096, 'one');
      using b2 = emulatedBuf(8192, 'two');
      const f = new Fence();
      using sf = SyncFile.create(f);
      const p = fifo();
      await a.send({ k: 'mixed' }, [b1, p.wr, sf, b2, p.wr]);
      const r = await b.receive({ timeout: 10000 });
      const [x1, n1, s1, x2, n2] = r.attachments;
      expect(x1).toBeInstanceOf(DmaBuf);
      expect((x1 as DmaBuf).name).toBe('one');
      expect((x1 as DmaBuf).size).toBe(4096);
      expect(typeof n1).toBe('number');
      expect(s1).toBeInstanceOf(SyncFile);
      expect(x2).toBeInstanceOf(DmaBuf);
      expect((x2 as DmaBuf).name).toBe('two');
      expect((x2 as DmaBuf).size).toBe(8192);
      expect(typeof n2).toBe('number');
      expect(n1).not.toBe(n2);
      f.signal();
      expect(await (s1 as SyncFile).wait({ timeout: 20000 })).toBe(true);
      (x1 as DmaBuf).close();
      (x2 as DmaBuf).close();
      (s1 as SyncFile).close();
      closeSync(n1 as number);
      closeSync(n2 as number);
      f.dispose();

      // SCM_MAX_FD exactly.
      const many = Array.from({ length: 253 }, () => p.rd);
      await a.send({ k: 253 }, many);
      const r2 = await b.receive({ timeout: 10000 });
      expect(r2.message).toEqual({ k: 253 });
      expect(r2.attachments).toHaveLength(253);
      expect(new Set(r2.attachments).size).toBe(253);
      for (const fd of r2.attachments) closeSync(fd as number);
      p.close();
    }
    expect(await settledFds(before)).toBe(before);
  });
});

describe('across a child process', () => {
  it('a child receives a buffer and a fence, waits, reads the bytes and replies', async () => {
    const [a, b] = FdChannel.pair();
    using _a = a;
    using buf = emulatedBuf(4096, 'shared');
    const bytes = new Uint8Array(buf.map());
    const f = new Fence();
    using sf = SyncFile.create(f);
    const child = spawnNode(
      `
      const { FdChannel } = require(${JSON.stringify(DIST)});
      (async () => {
        const ch = FdChannel.fromFd(3);
        const { message, attachments: [buf, sf] } = await ch.receive();
        process.stdout.write('waiting ' + message.hello + ' ' + buf.backend + ' ' + buf.size + ' ' + buf.name + ' ' + sf.status + '\\n');
        await sf.wait();
        const v = new Uint8Array(buf.map());
        let sum = 0;
        for (const x of v) sum += x;
        await ch.send({ sum, first: v[0], status: sf.status, pid: process.pid, peer: ch.peer });
        v[1] = 77; // seen by the parent
        await ch.send('done');
        buf.close(); sf.close(); ch.close();
      })().catch((e) => { console.error(e); process.exit(1); });
      `,
      b.fd,
    );
    b.close(); // the child has its own
    await a.send({ hello: 'child' }, [buf, sf]);
    await child.waitFor('waiting');
    expect(child.out()).toContain('waiting child emulated 4096 shared 0');
    // Written after the child is waiting, then signalled.
    bytes.fill(3);
    f.signal();
    const reply = await a.receive({ timeout: 20000 });
    const m = reply.message as { sum: number; first: number; status: number; pid: number; peer: { pid: number } };
    expect(m.sum).toBe(3 * 4096);
    expect(m.first).toBe(3);
    expect(m.status).toBe(1);
    expect(m.peer.pid).toBe(process.pid);
    expect(a.peer.pid).toBe(process.pid); // SO_PEERCRED: as of socketpair()
    expect((await a.receive({ timeout: 20000 })).message).toBe('done');
    expect(bytes[1]).toBe(77);
    expect(await child.exit).toBe(0);
    // The child closed its end: end of stream.
    await expectDmaBufRejection(a.receive({ timeout: 20000 }), 'ECONNRESET');
    f.dispose();
  });

  it("a child's emulated SyncFile that never signals reads signalled with -EPIPE once the child is gone", async () => {
    await warmUp();
    const before = openFds();
    const [a, b] = FdChannel.pair();
    const child = spawnNode(
      `
      const { FdChannel, Fence, SyncFile } = require(${JSON.stringify(DIST)});
      const ch = FdChannel.fromFd(3);
      const f = new Fence(); // never signalled
      const sf = SyncFile.create(f);
      ch.send('fence', [sf]).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
      `,
      b.fd,
    );
    b.close();
    const r = await a.receive({ timeout: 20000 });
    expect(r.message).toBe('fence');
    const got = r.attachments[0] as SyncFile;
    expect(await child.exit).toBe(0);
    expect(await got.wait({ timeout: 20000 })).toBe(true);
    expect(got.status).toBe(-32); // EPIPE: the exporter went away
    got.close();
    a.close();
    expect(await settledFds(before)).toBe(before);
  });
});

describe('a worker thread', () => {
  it('adopts an end with fromFd() (a dup) and exchanges messages with fds', async () => {
    await warmUp();
    const before = openFds();
    const [a, b] = FdChannel.pair();
    const w = new Worker(
      `
      const { workerData, parentPort } = require('node:worker_threads');
      const { FdChannel } = require(${JSON.stringify(DIST)});
      (async () => {
        const ch = FdChannel.fromFd(workerData.fd); // a dup: the main thread keeps its end
        const { message, attachments } = await ch.receive();
        const v = new Uint8Array(attachments[0].map());
        await ch.send({ echo: message, byte: v[5] }, [attachments[0]]);
        attachments[0].close();
        ch.close();
        parentPort.postMessage('bye');
      })().catch((e) => parentPort.postMessage('error ' + (e && e.stack)));
      `,
      { eval: true, workerData: { fd: b.fd } },
    );
    const said = new Promise((r) => w.once('message', r));
    const exited = new Promise((r) => w.once('exit', r)); // now: it may exit before the reply is read
    const buf = emulatedBuf(4096);
    new Uint8Array(buf.map())[5] = 55;
    await a.send({ from: 'main' }, [buf]);
    const r = await a.receive({ timeout: 20000 });
    expect(r.message).toEqual({ echo: { from: 'main' }, byte: 55 });
    const back = r.attachments[0] as DmaBuf;
    expect(new Uint8Array(back.map())[5]).toBe(55);
    back.close();
    buf.close();
    expect(await said).toBe('bye');
    await exited;
    // The worker's dup is closed; the main thread's end is still open.
    expect(b.closed).toBe(false);
    b.close();
    a.close();
    expect(await settledFds(before)).toBe(before);
  });
});

describe('listen / connect / accept', () => {
  it('socket file mode 0600 by default, or the mode asked for; peer credentials', async () => {
    const p1 = sockPath();
    const s1 = FdChannel.listen(p1);
    expect(s1).toBeInstanceOf(FdChannelServer);
    expect(s1.path).toBe(p1);
    const st = statSync(p1);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o600);
    const c = FdChannel.connect(p1);
    const s = await s1.accept();
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(s.peer).toEqual(me);
    expect(c.peer).toEqual(me);
    await c.send('hi');
    expect((await s.receive({ timeout: 10000 })).message).toBe('hi');
    c.close();
    s.close();
    s1.close();

    const p2 = sockPath();
    using s2 = FdChannel.listen(p2, { mode: 0o660 });
    expect(statSync(p2).mode & 0o7777).toBe(0o660);
  });

  it("the accepted channel's peer is the connecting process", async () => {
    const p = sockPath();
    using server = FdChannel.listen(p);
    const child = spawn(
      process.execPath,
      ['-e', `const { FdChannel } = require(${JSON.stringify(DIST)}); const c = FdChannel.connect(${JSON.stringify(p)}); c.receive().then(() => c.close());`],
      { stdio: 'inherit' },
    );
    const exited = new Promise((r) => child.on('exit', r));
    const ch = await server.accept();
    expect(ch.peer.pid).toBe(child.pid);
    expect(ch.peer.uid).toBe(process.getuid!());
    await ch.send('bye');
    await exited;
    await expectDmaBufRejection(ch.receive({ timeout: 20000 }), 'ECONNRESET');
    ch.close();
  });

  it('for await over connections and over messages (ending when the peer closes)', async () => {
    const p = sockPath();
    const server = FdChannel.listen(p);
    const clients = [FdChannel.connect(p), FdChannel.connect(p), FdChannel.connect(p)];
    const accepted: FdChannel[] = [];
    for await (const ch of server) {
      accepted.push(ch);
      if (accepted.length === 3) break;
    }
    expect(accepted).toHaveLength(3);
    clients.forEach((c, i) => void c.send({ i }));
    for (let i = 0; i < 3; i++) {
      const m = await accepted[i]!.receive({ timeout: 10000 });
      expect(m.message).toEqual({ i });
    }
    // Messages until the peer closes.
    for (let i = 0; i < 5; i++) await clients[0]!.send(i);
    clients[0]!.close();
    const seen: unknown[] = [];
    for await (const m of accepted[0]!) seen.push(m.message);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    // A for await over the server ends when the server closes.
    const it = (async () => {
      const got: FdChannel[] = [];
      for await (const ch of server) got.push(ch);
      return got;
    })();
    await sleep(20);
    server.close();
    expect(await it).toEqual([]);
    for (const c of [...clients, ...accepted]) c.close();
  });

  it('close() removes the socket file and rejects pending accepts with EBADF', async () => {
    await warmUp();
    const before = openFds();
    const p = sockPath();
    const server = FdChannel.listen(p);
    const pend = server.accept();
    const pend2 = server.accept();
    await sleep(20);
    expect(await settled(pend)).toBe(false);
    server.close();
    await expectDmaBufRejection(pend, 'EBADF');
    await expectDmaBufRejection(pend2, 'EBADF');
    expect(() => statSync(p)).toThrow(/ENOENT/);
    await expectDmaBufRejection(server.accept(), 'EBADF');
    server.close(); // idempotent
    expect(() => FdChannel.connect(p)).toThrow(DmaBufError);
    expect(await settledFds(before)).toBe(before);
  });

  it('EADDRINUSE where a server listens or a regular file is; a stale socket is replaced', async () => {
    await warmUp();
    const before = openFds();
    const p = sockPath();
    const server = FdChannel.listen(p);
    let e: unknown;
    try {
      FdChannel.listen(p);
    } catch (x) {
      e = x;
    }
    expect((e as DmaBufError).code).toBe('EADDRINUSE');
    // The first server still works.
    const c = FdChannel.connect(p);
    const s = await server.accept();
    c.close();
    s.close();
    server.close();

    const file = path.join(dir, `regular${seq++}`);
    writeFileSync(file, 'keep me');
    e = undefined;
    try {
      FdChannel.listen(file);
    } catch (x) {
      e = x;
    }
    expect((e as DmaBufError).code).toBe('EADDRINUSE');
    expect(statSync(file).isFile()).toBe(true);

    // A stale socket: a server process that died without removing its file.
    const stale = sockPath();
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(DIST)}).FdChannel.listen(${JSON.stringify(stale)}); process.exit(0);`]);
    expect(r.status).toBe(0);
    expect(statSync(stale).isSocket()).toBe(true);
    expect(() => FdChannel.connect(stale)).toThrow(DmaBufError); // ECONNREFUSED
    using again = FdChannel.listen(stale);
    const c2 = FdChannel.connect(stale);
    const s2 = await again.accept();
    await c2.send('fresh');
    expect((await s2.receive({ timeout: 10000 })).message).toBe('fresh');
    c2.close();
    s2.close();
    again.close();
    expect(await settledFds(before)).toBe(before);
  });

  it('connect: ENOENT for a missing path, ECONNREFUSED for a dead one; ENAMETOOLONG; nothing leaks', async () => {
    await warmUp();
    const before = openFds();
    let e: unknown;
    try {
      FdChannel.connect(path.join(dir, 'missing.sock'));
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(DmaBufError);
    expect((e as DmaBufError).code).toBe('ENOENT');
    const long = path.join(dir, 'x'.repeat(120));
    for (const f of [() => FdChannel.connect(long), () => FdChannel.listen(long)]) {
      e = undefined;
      try {
        f();
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(DmaBufError);
      expect((e as DmaBufError).code).toBe('ENAMETOOLONG');
    }
    expect(() => FdChannel.listen(sockPath(), { mode: 0o10000 })).toThrow(RangeError);
    expect(() => FdChannel.listen(sockPath(), { backlog: 0 })).toThrow(RangeError);
    expect(() => FdChannel.connect(3 as unknown as string)).toThrow(TypeError);
    // A NUL byte would cut the C path short (and bind another file): refused.
    const cut = path.join(dir, `nul${seq++}`);
    expect(() => FdChannel.listen(`${cut}\0.sock`)).toThrow(TypeError);
    expect(() => FdChannel.connect(`${cut}\0.sock`)).toThrow(TypeError);
    expect(() => statSync(cut)).toThrow(/ENOENT/);
    e = undefined;
    try {
      FdChannel.listen('');
    } catch (x) {
      e = x;
    }
    expect((e as DmaBufError).code).toBe('EINVAL');
    expect(await settledFds(before)).toBe(before);
  });
});

describe('errors, and no fd leaks', () => {
  it('bad input: 254 attachments EINVAL, > 64 KiB EMSGSIZE, BigInt/circular/bad attachments TypeError, closed fd EBADF', async () => {
    await warmUp();
    const [a, b] = FdChannel.pair();
    const p = fifo();
    using buf = emulatedBuf(4096);
    const before = openFds();
    await expectDmaBufRejection(a.send('x', Array.from({ length: 254 }, () => p.rd)), 'EINVAL');
    await expectDmaBufRejection(a.send('x'.repeat(64 * 1024)), 'EMSGSIZE');
    await expectDmaBufRejection(a.send({ big: 'y'.repeat(70000) }, [buf]), 'EMSGSIZE');
    await expectRejectsCode(a.send({ n: 1n }), 'ERR_INVALID_ARG_TYPE');
    const circ: Record<string, unknown> = {};
    circ['self'] = circ;
    expect(await rejection(a.send(circ))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send(undefined))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send(() => 1))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send(Symbol('s')))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send('x', [{} as unknown as number]))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send('x', ['3' as unknown as number]))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send('x', 3 as unknown as number[]))).toBeInstanceOf(TypeError);
    expect(await rejection(a.send('x', [-1]))).toBeInstanceOf(RangeError);
    expect(await rejection(a.send('x', [1.5]))).toBeInstanceOf(RangeError);
    // A closed fd (after good ones, which were dup'ed first and must be closed again).
    // (A number no dup made on the way can take: a freed low one would be reused.)
    const dead = 1_000_000;
    const e = await expectDmaBufRejection(a.send('x', [p.rd, buf, dead]), 'EBADF');
    expect(e.message).toContain(String(dead));
    // A closed DmaBuf or SyncFile.
    const gone = emulatedBuf(4096);
    gone.close();
    expect(await rejection(a.send('x', [gone]))).toBeInstanceOf(Error);
    // Nothing was sent by any of them.
    await expectDmaBufRejection(b.receive({ timeout: 0 }), 'ETIMEDOUT');
    // A message just under the limit goes through.
    await a.send('z'.repeat(60000));
    expect(((await b.receive({ timeout: 10000 })).message as string).length).toBe(60000);
    expect(await settledFds(before)).toBe(before);
    p.close();
    a.close();
    b.close();
  });

  it('a closed channel: EBADF for send, receive and peer', async () => {
    const [a, b] = FdChannel.pair();
    a.close();
    await expectDmaBufRejection(a.send('x'), 'EBADF');
    await expectDmaBufRejection(a.receive(), 'EBADF');
    expect(() => a.peer).toThrow(DmaBufError);
    // for await over a closed channel ends at once.
    for await (const _ of a) throw new Error('no messages expected');
    b.close();
  });

  it('the peer went away: EPIPE for send; ECONNRESET for receive after the queued messages', async () => {
    await warmUp();
    const before = openFds();
    const [a, b] = FdChannel.pair();
    await a.send('last words');
    a.close();
    const r = await b.receive({ timeout: 10000 });
    expect(r.message).toBe('last words');
    await expectDmaBufRejection(b.receive({ timeout: 10000 }), 'ECONNRESET');
    await expectDmaBufRejection(b.receive(), 'ECONNRESET'); // and stays so
    const e = await rejection(b.send('anyone?'));
    expect(e).toBeInstanceOf(DmaBufError);
    expect(['EPIPE', 'ECONNRESET']).toContain((e as DmaBufError).code);
    expect((e as DmaBufError).code).toBe('EPIPE');
    // With an attachment too: its dup is closed.
    using buf = emulatedBuf(4096);
    await expectDmaBufRejection(b.send('x', [buf]), 'EPIPE');
    b.close();

    // A receive pending when the peer closes.
    const [c, d] = FdChannel.pair();
    const pend = d.receive();
    await sleep(20);
    c.close();
    await expectDmaBufRejection(pend, 'ECONNRESET');
    d.close();
    buf.close();
    expect(await settledFds(before)).toBe(before);
  });

  it("a peer that closes with our messages unread: what it sent still arrives (received now or pending), then ECONNRESET", async () => {
    // The kernel then sets the socket's pending error (ECONNRESET, POLLERR,
    // which libuv reports as EBADF): neither may cut the stream short.
    const [a, b] = FdChannel.pair();
    await a.send('never read by b');
    await b.send('b1');
    await b.send('b2');
    b.close();
    const seen: unknown[] = [];
    for await (const m of a) seen.push(m.message);
    expect(seen).toEqual(['b1', 'b2']);
    await expectDmaBufRejection(a.receive(), 'ECONNRESET');
    const e = await rejection(a.send('x'));
    expect(['EPIPE', 'ECONNRESET']).toContain((e as DmaBufError).code);
    a.close();

    const [c, d] = FdChannel.pair();
    await c.send('never read by d');
    const r1 = c.receive({ timeout: 20000 });
    const r2 = c.receive({ timeout: 20000 });
    const r3 = c.receive({ timeout: 20000 });
    await sleep(20);
    await d.send('d1');
    await d.send('d2');
    d.close();
    expect((await r1).message).toBe('d1');
    expect((await r2).message).toBe('d2');
    await expectDmaBufRejection(r3, 'ECONNRESET');
    c.close();
  });

  it('receive timeout: ETIMEDOUT; abort: AbortError; neither loses the next message', async () => {
    const [a, b] = FdChannel.pair();
    await expectDmaBufRejection(b.receive({ timeout: 0 }), 'ETIMEDOUT');
    await expectDmaBufRejection(b.receive({ timeout: 30 }), 'ETIMEDOUT');
    // timeout: 0 with a message queued: the message.
    await a.send('queued');
    expect((await b.receive({ timeout: 0 })).message).toBe('queued');
    // A message arriving after a receive timed out waits for the next receive.
    await expectDmaBufRejection(b.receive({ timeout: 30 }), 'ETIMEDOUT');
    await a.send('late');
    expect((await b.receive({ timeout: 10000 })).message).toBe('late');
    const ac = new AbortController();
    ac.abort(new Error('before'));
    const e1 = (await rejection(b.receive({ signal: ac.signal }))) as Error;
    expect(e1.name).toBe('AbortError');
    const ac2 = new AbortController();
    const pend = b.receive({ signal: ac2.signal });
    await sleep(20);
    ac2.abort();
    const e2 = (await rejection(pend)) as Error;
    expect(e2.name).toBe('AbortError');
    await a.send('next');
    expect((await b.receive({ timeout: 10000 })).message).toBe('next');
    // Two receivers in line: each gets one message, in order.
    const r1 = b.receive({ timeout: 10000 });
    const r2 = b.receive({ timeout: 10000 });
    const r3 = b.receive({ timeout: 30 });
    await a.send(1);
    await a.send(2);
    expect((await r1).message).toBe(1);
    expect((await r2).message).toBe(2);
    await expectDmaBufRejection(r3, 'ETIMEDOUT');
    expect(await rejection(b.receive({ timeout: -1 }))).toBeInstanceOf(Error);
    a.close();
    b.close();
  });

  it('close() while receives and sends are pending: EBADF, held dups closed', async () => {
    await warmUp();
    const before = openFds();
    const [a, b] = FdChannel.pair();
    const r1 = b.receive();
    const r2 = b.receive({ timeout: 60000 });
    await sleep(20);
    b.close();
    await expectDmaBufRejection(r1, 'EBADF');
    await expectDmaBufRejection(r2, 'EBADF');
    // Fill a's queue so sends stay pending, each holding a dup of the buffer.
    const [c, d] = FdChannel.pair();
    const buf = emulatedBuf(4096);
    const sends: Promise<void>[] = [];
    const pad = 'q'.repeat(4000);
    for (let i = 0; i < 300; i++) sends.push(c.send({ i, pad }, [buf]));
    await sleep(50);
    const pending = [];
    for (const s of sends) pending.push(!(await settled(s)));
    expect(pending.some((x) => x)).toBe(true);
    c.close();
    const results = await Promise.allSettled(sends);
    const rejected = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
    expect(rejected.length).toBeGreaterThan(0);
    for (const x of rejected) expect((x.reason as DmaBufError).code).toBe('EBADF');
    // What did arrive is read and closed; then the end of the stream.
    let got = 0;
    for await (const m of d) {
      for (const x of m.attachments) (x as DmaBuf).close();
      got++;
    }
    expect(got).toBe(results.length - rejected.length);
    d.close();
    buf.close();
    a.close();
    expect(await settledFds(before)).toBe(before);
  });

  it('a foreign datagram: EPROTO with its fds closed; the next message still arrives', async () => {
    await warmUp();
    const [a, b] = FdChannel.pair();
    const h = raw.chFromFd(a.fd, true); // a second handle on a's socket
    const p = fifo();
    using buf = emulatedBuf(4096);
    const before = openFds();
    const send = (s: string, fds: number[]): void => {
      const set = fds.length ? raw.fdsetCreate(fds) : null;
      try {
        expect(raw.chSend(h, new TextEncoder().encode(s), set)).toBe(true);
      } finally {
        if (set) raw.fdsetClose(set);
      }
    };
    const cases: [string, number[]][] = [
      ['hello, not JSON', [p.rd, p.wr]],
      ['\xff\xfe', [p.rd]],
      ['{"v":2,"m":1,"a":[{"k":"fd"}]}', [p.rd]],
      ['{"v":1,"m":1,"a":[]}', [p.rd]], // more fds than descriptors
      ['{"v":1,"m":1,"a":[{"k":"fd"},{"k":"fd"}]}', [p.rd]], // fewer
      ['{"v":1,"m":1}', [p.rd]],
      ['null', [p.rd]],
    ];
    for (const [s, fds] of cases) {
      send(s, fds);
      const e = await expectDmaBufRejection(b.receive({ timeout: 10000 }), 'EPROTO');
      expect(e.message).toContain(`${fds.length} fds`);
    }
    // Descriptors that do not fit their fds: the adoption fails, every fd closed.
    const bad: [string, number[]][] = [
      ['{"v":1,"m":1,"a":[{"k":"fd"},{"k":"dmabuf","b":"emulated","size":4096,"name":"","exp":"x"},{"k":"fd"}]}', [p.rd, p.wr, p.rd]],
      ['{"v":1,"m":1,"a":[{"k":"dmabuf","b":"emulated","size":4096,"name":"","exp":"x"},{"k":"sync_file"}]}', [buf.fd, p.rd]],
      ['{"v":1,"m":1,"a":[{"k":"dmabuf","b":"kernel","size":4096,"name":"","exp":"x"}]}', [p.rd]],
      ['{"v":1,"m":1,"a":[{"k":"dmabuf","b":"emulated","size":1048576,"name":"","exp":"x"}]}', [buf.fd]], // bigger than the memfd
    ];
    for (const [s, fds] of bad) {
      send(s, fds);
      const e = await rejection(b.receive({ timeout: 10000 }));
      expect(e).toBeInstanceOf(DmaBufError);
    }
    expect(await settledFds(before)).toBe(before);
    // An unknown descriptor kind is a plain fd.
    send('{"v":1,"m":"odd","a":[{"k":"future"}]}', [p.rd]);
    const odd = await b.receive({ timeout: 10000 });
    expect(odd.message).toBe('odd');
    expect(typeof odd.attachments[0]).toBe('number');
    closeSync(odd.attachments[0] as number);
    await a.send('fine');
    expect((await b.receive({ timeout: 10000 })).message).toBe('fine');
    raw.chClose(h);
    p.close();
    a.close();
    b.close();
  });

  it('foreign datagrams while a receive is pending, and an oversized one (MSG_TRUNC): EPROTO / EMSGSIZE, fds closed', async () => {
    await warmUp();
    const [a, b] = FdChannel.pair();
    const p = fifo();
    const before = openFds();
    // A pending receive meets a datagram that is not ours.
    const h = raw.chFromFd(a.fd, true);
    const pend = b.receive({ timeout: 20000 });
    await sleep(20);
    const set = raw.fdsetCreate([p.rd, p.wr]);
    expect(raw.chSend(h, new TextEncoder().encode('{"v":1}'), set)).toBe(true);
    raw.fdsetClose(set);
    raw.chClose(h);
    await expectDmaBufRejection(pend, 'EPROTO');
    // A sender that is not us: more than 64 KiB with fds (python, on a dup of a's socket).
    if (!PYTHON) {
      a.close();
      b.close();
      p.close();
      return;
    }
    const pyChild = spawn(
      'python3',
      [
        '-c',
        'import socket, array, os\n' +
          's = socket.socket(fileno=3)\n' +
          's.sendmsg([b"x" * 70000], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 0, 0]))])\n' +
          's.sendmsg([b\'{"v":1,"m":"after","a":[]}\'])\n' +
          'os.close(3)\n',
      ],
      { stdio: ['ignore', 'ignore', 'pipe', a.fd], env: pyEnv }, // (fds in flight would hold its pipes open)
    );
    let pyErr = '';
    pyChild.stderr!.on('data', (d: Buffer) => (pyErr += d.toString()));
    const pyCode = await new Promise((r) => pyChild.on('exit', r));
    expect(pyErr).toBe('');
    expect(pyCode).toBe(0);
    const e = await expectDmaBufRejection(b.receive({ timeout: 20000 }), 'EMSGSIZE');
    expect(e.message).toMatch(/65536/);
    expect((await b.receive({ timeout: 20000 })).message).toBe('after');
    expect(await settledFds(before)).toBe(before);
    a.close();
    b.close();
    p.close();
  });

  it('sends pending when the peer closes reject with EPIPE, their held fds closed', async () => {
    await warmUp();
    const before = openFds();
    const [a, b] = FdChannel.pair();
    const buf = emulatedBuf(4096);
    const pad = 'r'.repeat(4000);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) sends.push(a.send({ i, pad }, [buf]));
    buf.close();
    await sleep(50);
    expect(await settled(sends[299]!)).toBe(false);
    b.close(); // the queued messages (and their fds) go with it
    const results = await Promise.allSettled(sends);
    const rejected = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
    expect(rejected.length).toBeGreaterThan(0);
    for (const x of rejected) expect(['EPIPE', 'ECONNRESET']).toContain((x.reason as DmaBufError).code);
    expect(results.slice(0, 300 - rejected.length).every((x) => x.status === 'fulfilled')).toBe(true);
    a.close();
    expect(await settledFds(before)).toBe(before);
  });

  it('both ends sending more than their queues hold, then receiving: no deadlock, order kept', async () => {
    const [a, b] = FdChannel.pair();
    const pad = 's'.repeat(8000);
    const N = 150;
    const sa: Promise<void>[] = [];
    const sb: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      sa.push(a.send({ from: 'a', i, pad }));
      sb.push(b.send({ from: 'b', i, pad }));
    }
    const recvAll = async (ch: FdChannel, from: string): Promise<void> => {
      for (let i = 0; i < N; i++) {
        const m = (await ch.receive({ timeout: 20000 })).message as { from: string; i: number };
        expect(m.from).toBe(from);
        expect(m.i).toBe(i);
      }
    };
    await Promise.all([recvAll(a, 'b'), recvAll(b, 'a'), ...sa, ...sb]);
    a.close();
    b.close();
  });

  it('MSG_CTRUNC: a receiver out of fds gets EMFILE, leaks nothing, and goes on receiving', async () => {
    const [a, b] = FdChannel.pair();
    using _a = a;
    const child = spawnNode(
      `
      const { readdirSync } = require('node:fs');
      const { FdChannel } = require(${JSON.stringify(DIST)});
      const count = () => readdirSync('/proc/self/fd').length;
      (async () => {
        const ch = FdChannel.fromFd(3);
        await ch.send('ready');
        const m0 = await ch.receive(); // a warm-up: one fd
        for (const fd of m0.attachments) require('node:fs').closeSync(fd);
        const before = count();
        let code = 'none', message = '';
        try {
          await ch.receive();
        } catch (e) {
          code = e.code; message = e.message;
        }
        const after = count();
        const next = await ch.receive();
        await ch.send({ code, message, before, after, next: next.message, n: next.attachments.length });
        for (const fd of next.attachments) require('node:fs').closeSync(fd);
        ch.close();
      })().catch((e) => { console.error(e); process.exit(1); });
      `,
      b.fd,
      'ulimit -n 60 && { [ -z "$FDCH_PRELOAD" ] || export LD_PRELOAD="$FDCH_PRELOAD"; } && exec "$0" -e "$1"',
    );
    b.close();
    expect((await a.receive({ timeout: 20000 })).message).toBe('ready');
    const p = fifo();
    await a.send('warm', [p.rd]);
    await sleep(200);
    await a.send('too many', Array.from({ length: 200 }, () => p.rd));
    await a.send('after', [p.rd]);
    const r = await a.receive({ timeout: 30000 }).catch((e) => {
      throw new Error(`${e}; child stderr: ${child.err()}`);
    });
    const m = r.message as { code: string; message: string; before: number; after: number; next: string; n: number };
    expect(m.code).toBe('EMFILE');
    expect(m.message).toMatch(/MSG_CTRUNC/);
    expect(m.after).toBe(m.before);
    expect(m.next).toBe('after');
    expect(m.n).toBe(1);
    expect(await child.exit).toBe(0);
    p.close();
  });

  it('a full queue: sends stay pending without blocking the loop, then all resolve in order', async () => {
    await warmUp();
    const before = openFds();
    const [a, b] = FdChannel.pair();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const N = 300;
    const payload = 'p'.repeat(2000);
    const sends: Promise<void>[] = [];
    let resolved = 0;
    for (let i = 0; i < N; i++) {
      const s = a.send({ i, payload });
      s.then(() => resolved++);
      sends.push(s);
    }
    // The last send, carrying a buffer closed right after send(): its dup is held.
    const buf = emulatedBuf(4096, 'late');
    new Uint8Array(buf.map())[0] = 99;
    const last = a.send({ i: N }, [buf]);
    buf.close();
    await sleep(100);
    expect(ticks).toBeGreaterThan(0); // the loop ran
    expect(resolved).toBeGreaterThan(0);
    expect(resolved).toBeLessThan(N); // the rest wait for room
    expect(await settled(last)).toBe(false);
    for (let i = 0; i <= N; i++) {
      const r = await b.receive({ timeout: 20000 });
      expect((r.message as { i: number }).i).toBe(i);
      if (i === N) {
        const got = r.attachments[0] as DmaBuf;
        expect(got.name).toBe('late');
        expect(new Uint8Array(got.map())[0]).toBe(99);
        got.close();
      }
    }
    await Promise.all(sends);
    await last;
    expect(resolved).toBe(N);
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(5);
    a.close();
    b.close();
    expect(await settledFds(before)).toBe(before);
  });

  it('fromFd(): EINVAL for fds that are not SEQPACKET sockets, EBADF for closed ones; dup:false takes the fd', async () => {
    await warmUp();
    const p = fifo();
    const before = openFds();
    let e: unknown;
    try {
      FdChannel.fromFd(p.rd);
    } catch (x) {
      e = x;
    }
    expect((e as DmaBufError).code).toBe('EINVAL');
    const q = fifo();
    const dead = q.rd;
    q.close();
    e = undefined;
    try {
      FdChannel.fromFd(dead);
    } catch (x) {
      e = x;
    }
    expect((e as DmaBufError).code).toBe('EBADF');
    expect(() => FdChannel.fromFd(-1)).toThrow(RangeError);
    expect(() => FdChannel.fromFd('3' as unknown as number)).toThrow(TypeError);
    expect(() => FdChannel.fromFd(p.rd, { dup: 1 as unknown as boolean })).toThrow(TypeError);
    const [a, b] = FdChannel.pair();
    // An fd this side owns: b's socket, sent over another channel as a plain fd.
    const [x, y] = FdChannel.pair();
    await x.send('an end', [b.fd]);
    const fd = (await y.receive({ timeout: 10000 })).attachments[0] as number;
    x.close();
    y.close();
    const c = FdChannel.fromFd(fd, { dup: false }); // takes fd over (closed by now or by c.close())
    await a.send('via dup');
    expect((await c.receive({ timeout: 10000 })).message).toBe('via dup');
    c.close();
    // b still works (its own fd).
    await a.send('to b');
    expect((await b.receive({ timeout: 10000 })).message).toBe('to b');
    a.close();
    b.close();
    expect(await settledFds(before)).toBe(before);
    p.close();
  });
});
