// Emulated sync_files as real fds (core/sync/sync_file_fd.h): poll(2) sees them
// readable once the fence signals, SyncFile.fromFd() turns one back into a
// SyncFile (status and error included), in this process and in a child it is
// handed to; nothing leaks.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Fence, SwSyncTimeline, SyncFile } from '../lib';
import { expectDmaBufError, openFds, settledFds, sleep } from './helpers';


const DIST = path.resolve(__dirname, '..', 'dist', 'index.js');

/** poll(fd, POLLIN, 0) through the kernel-backend sync_file check, from a fresh process-free path. */
function readable(fd: number): boolean {
  // A SyncFile over a dup of the fd answers what poll says.
  const s = SyncFile.fromFd(fd);
  try {
    return s.isSignaled();
  } finally {
    s.close();
  }
}

/** Starts the process-wide fd watcher (its epoll fds stay open) before fds are counted. */
async function warmUp(): Promise<void> {
  const f = new Fence();
  const sf = SyncFile.create(f);
  const back = SyncFile.fromFd(sf.fd);
  const w = back.wait();
  f.signal();
  await w;
  back.close();
  sf.close();
  f.dispose();
}

describe('emulated SyncFile.fd', () => {
  it('is a real fd that turns readable when the fence signals, with its status', async () => {
    await warmUp();
    const before = openFds();
    const f = new Fence();
    const sf = SyncFile.create(f);
    const fd = sf.fd;
    expect(fd).toBeGreaterThan(2);
    expect(sf.fd).toBe(fd); // made once
    const back = SyncFile.fromFd(fd);
    expect(back.backend).toBe('emulated');
    expect(back.status).toBe(0);
    expect(readable(fd)).toBe(false);
    const w = back.wait();
    f.signal();
    expect(await w).toBe(true);
    expect(back.status).toBe(1);
    expect(readable(fd)).toBe(true);
    // The timestamp crosses too.
    expect(back.info().fences[0]!.timestampNs).toBe(f.timestamp);
    back.close();
    sf.close();
    f.dispose();
    expect(await settledFds(before)).toBe(before);
  });

  it('carries the fence error', async () => {
    const f = new Fence();
    using sf = SyncFile.create(f);
    using back = SyncFile.fromFd(sf.fd);
    f.setError(-110);
    f.signal();
    expect(await back.wait({ timeout: 5000 })).toBe(true);
    expect(back.status).toBe(-110);
    f.dispose();
  });

  it('an already signalled fence: readable at once; sw_sync points and merges too', async () => {
    using sf = SyncFile.create(Fence.stub());
    using back = SyncFile.fromFd(sf.fd, { dup: true });
    expect(back.isSignaled()).toBe(true);
    expect(back.status).toBe(1);
    using tl = new SwSyncTimeline();
    using a = tl.createFence(1);
    using b = tl.createFence(2);
    using m = SyncFile.merge('m', a, b);
    using mb = SyncFile.fromFd(m.fd);
    expect(mb.isSignaled()).toBe(false);
    tl.inc(1);
    expect(mb.isSignaled()).toBe(false);
    tl.inc(1);
    expect(await mb.wait({ timeout: 5000 })).toBe(true);
    // A received one merges with local emulated sync_files.
    using again = SyncFile.merge('again', mb, a);
    expect(again.status).toBe(1);
  });

  it('closed fds and fds of other kinds are refused, nothing leaks', async () => {
    await warmUp();
    const before = openFds();
    const f = new Fence();
    const sf = SyncFile.create(f);
    const fd = sf.fd;
    sf.close(); // closes its fd
    expectDmaBufError(() => SyncFile.fromFd(fd), 'EBADF');
    expectDmaBufError(() => SyncFile.fromFd(0), 'ENOTTY'); // stdin: not a sync_file
    f.signal();
    f.dispose();
    expect(await settledFds(before)).toBe(before);
  });
});

describe('across processes', () => {
  it("a child polls the parent's emulated sync_file fd and reads its status", async () => {
    const f = new Fence();
    using sf = SyncFile.create(f);
    const child = spawn(process.execPath, ['-e', `
      const { SyncFile } = require(${JSON.stringify(DIST)});
      const s = SyncFile.fromFd(3);
      process.stdout.write('ready ' + s.backend + ' ' + s.status + '\\n');
      s.wait().then((ok) => { process.stdout.write('done ' + ok + ' ' + s.status + '\\n'); s.close(); });
    `], { stdio: ['ignore', 'pipe', 'inherit', sf.fd] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    while (!out.includes('ready')) await sleep(10);
    expect(out).toContain('ready emulated 0');
    f.setError(-5);
    f.signal();
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(out).toContain('done true -5');
    f.dispose();
  });
});
