// The shared emulation of `dmabuf run` (docs/run.md): a broker process that owns
// one emulated platform, and the environment that makes a child see it through
// libdmabuf-preload.so. lib/cli/run.ts is the command; this is the library under it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Platform profiles the broker can emulate (the options createPlatform() has). */
export const RUN_PROFILES = {
  /** Linux 7.1 on this machine's architecture: the system heap. */
  default: [],
  /** Plus a 64 MiB CMA area: the CMA heap ("default_cma_region" and its legacy name). */
  cma: ['--cma-size', String(64 << 20)],
  /** A confidential-computing guest: system and system_cc_shared heaps. */
  cc: ['--mem-encrypt'],
  /** TEE protected heaps next to the system heap (no CPU access). */
  protected: ['--protected', 'protected,secure-video'],
} as const satisfies Record<string, readonly string[]>;
export type RunProfile = keyof typeof RUN_PROFILES;

/** What the emulation may replace: each is emulated when the host lacks it, or always with `emulate: true`. */
export type RunDevice = 'heaps' | 'udmabuf' | 'sw_sync';

export interface RunOptions {
  profile?: RunProfile;
  /** Emulate every device even where the host has the real one. */
  emulate?: boolean;
  /** Linux version the emulation follows (default 7.1). */
  kernelVersion?: string;
  /** Where the broker's stderr goes (default: inherited). */
  brokerStderr?: 'inherit' | 'ignore';
}

export interface RunSession {
  /** The environment a child needs (merge into process.env). */
  env: Record<string, string>;
  /** The devices emulated in this session. */
  emulated: RunDevice[];
  /** The broker's pid. */
  brokerPid: number;
  /** Stops the broker and removes the session's files; idempotent. */
  stop(): Promise<void>;
}

const HOST_NODES: Record<RunDevice, string> = {
  heaps: '/dev/dma_heap',
  udmabuf: '/dev/udmabuf',
  sw_sync: '/sys/kernel/debug/sync/sw_sync',
};

/** The directory holding dmabuf-broker and libdmabuf-preload.so (DMABUF_RUN_DIR overrides). */
export function runToolsDir(): string {
  const candidates = [
    process.env['DMABUF_RUN_DIR'],
    path.join(__dirname, '..', 'build', 'Release'),
    path.join(__dirname, '..', 'prebuilds', `${process.platform}-${process.arch}`),
  ].filter((d): d is string => !!d);
  for (const d of candidates) {
    if (fs.existsSync(path.join(d, 'dmabuf-broker')) && fs.existsSync(path.join(d, 'libdmabuf-preload.so'))) return d;
  }
  throw new Error(
    `dmabuf run: dmabuf-broker and libdmabuf-preload.so not found (looked in ${candidates.join(', ')}); build with \`npm run build\``,
  );
}

/** Which devices a session would emulate on this host. */
export function devicesToEmulate(emulate = false): RunDevice[] {
  return (Object.keys(HOST_NODES) as RunDevice[]).filter((d) => emulate || !fs.existsSync(HOST_NODES[d]));
}

/** Starts a broker; resolves once it accepts connections. */
export async function startRun(opts: RunOptions = {}): Promise<RunSession> {
  const profile = opts.profile ?? 'default';
  if (!Object.hasOwn(RUN_PROFILES, profile)) {
    throw new RangeError(`unknown profile '${String(profile)}' (one of ${Object.keys(RUN_PROFILES).join(', ')})`);
  }
  const dir = runToolsDir();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-run-'));
  fs.chmodSync(root, 0o755); // every user of the run stats the nodes through it
  const socket = `dmabuf-run.${process.pid}.${randomBytes(6).toString('hex')}`;
  const args = ['--socket', socket, '--root', root, '--ready-fd', '3', ...RUN_PROFILES[profile]];
  if (opts.kernelVersion) args.push('--kernel', opts.kernelVersion);
  // DMABUF_RUN_BROKER: another broker binary (CI runs a sanitizer build's).
  const brokerPath = process.env['DMABUF_RUN_BROKER'] || path.join(dir, 'dmabuf-broker');
  const broker: ChildProcess = spawn(brokerPath, args, {
    stdio: ['ignore', 'ignore', opts.brokerStderr ?? 'inherit', 'pipe'],
  });
  const cleanup = (): void => fs.rmSync(root, { recursive: true, force: true });
  try {
    await new Promise<void>((resolve, reject) => {
      const ready = broker.stdio[3] as NodeJS.ReadableStream;
      let text = '';
      ready.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('ready\n')) resolve();
      });
      broker.once('error', reject);
      broker.once('exit', (code, sig) => reject(new Error(`dmabuf run: the broker exited before it was ready (${sig ?? code})`)));
    });
  } catch (e) {
    broker.kill('SIGKILL');
    cleanup();
    throw e;
  }
  const emulated = devicesToEmulate(opts.emulate);
  const preload = path.join(dir, 'libdmabuf-preload.so');
  const prior = process.env['LD_PRELOAD'];
  const env: Record<string, string> = {
    // After what is there: a sanitizer runtime must stay first in the list.
    LD_PRELOAD: prior ? `${prior}:${preload}` : preload,
    DMABUF_RUN_SOCKET: socket,
    DMABUF_RUN_ROOT: root,
    DMABUF_RUN_EMULATE: emulated.join(','),
    DMABUF_RUN_BROKER_PID: String(broker.pid),
  };
  let stopped: Promise<void> | undefined;
  const exited = new Promise<void>((resolve) => {
    if (broker.exitCode !== null || broker.signalCode !== null) resolve();
    else broker.once('exit', () => resolve());
  });
  return {
    env,
    emulated,
    brokerPid: broker.pid!,
    stop(): Promise<void> {
      stopped ??= (async () => {
        broker.kill('SIGTERM');
        await exited;
        cleanup();
      })();
      return stopped;
    },
  };
}
