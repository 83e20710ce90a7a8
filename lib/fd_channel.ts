// FdChannel: messages with fds between processes (and threads), over AF_UNIX
// SOCK_SEQPACKET sockets with SCM_RIGHTS (native/kernel/fd_channel.h). A
// DmaBuf or SyncFile sent here arrives there as a DmaBuf or SyncFile over the
// same buffer / fence; plain fd numbers arrive as fd numbers the receiver owns.
//
// Wire format (one datagram per message): UTF-8 JSON
//   {"v":1,"m":<message>,"a":[<descriptor per fd>]}
// with the fds in SCM_RIGHTS, in the order of "a". Descriptors:
//   {"k":"dmabuf","b":"kernel"|"emulated","size":n,"name":s,"exp":s}
//   {"k":"sync_file"}   (a kernel sync_file, or an emulated one's fd)
//   {"k":"fd"}          (anything else)
// C programs can speak it (test/kernel/vgem_import.c does).
import { DmaBuf } from './dma_buf';
import { DmaBufError } from './errors';
import { abortError, invalidArgType, invalidArgValue, outOfRange } from './internal/args';
import { binding as nb, type External } from './internal/binding';
import { parseWaitOptions, waitTimer, type WaitOptions } from './internal/wait_options';
import { SyncFile, isSyncFile } from './sync_file';
import { unlinkSync } from 'node:fs';

/** What a message can carry: buffers, sync_files and fds (numbers the sender keeps). */
export type FdAttachment = DmaBuf | SyncFile | number;

/** A received message: the attachments rebuilt on this side (numbers are fds this side now owns). */
export interface FdMessage<T = unknown> {
  message: T;
  attachments: FdAttachment[];
}

/** Who is at the other end (SO_PEERCRED, as of connect or pair). */
export interface FdChannelPeer {
  pid: number;
  uid: number;
  gid: number;
}

const WIRE_VERSION = 1;
const MAX_MESSAGE = 64 * 1024; // kFdChannelMaxMessage
const MAX_FDS = 253; // SCM_MAX_FD
const UV_READABLE = 1;
const UV_WRITABLE = 2;

type Descriptor =
  | { k: 'dmabuf'; b: 'kernel' | 'emulated'; size: number; name: string; exp: string }
  | { k: 'sync_file' }
  | { k: 'fd' };

const kCreate = Symbol('dmabuf.fdChannel');
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// Natively, not with fs.closeSync: in a worker, Node warns about every fd
// closed there that fs did not open.
function closeFds(fds: number[]): void {
  if (fds.length) nb.fdsClose(fds);
}

/** A socket path: a string without NUL bytes (C would cut it short there, and bind another file). */
function checkPath(path: unknown): void {
  if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
  if (path.includes('\0')) throw invalidArgValue('path', 'must not contain null bytes', path);
}

function checkFd(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw outOfRange(name, 'a non-negative 32-bit integer', v);
  return v;
}

/** The payload and the fds to send for (message, attachments); throws before anything is held. */
function encode(message: unknown, attachments: unknown): { bytes: Uint8Array; fds: number[] } {
  if (attachments !== undefined && !Array.isArray(attachments)) {
    throw invalidArgType('attachments', 'an array of DmaBuf, SyncFile or fd numbers', attachments);
  }
  const list = (attachments ?? []) as unknown[];
  if (list.length > MAX_FDS) {
    throw new DmaBufError('EINVAL', `${list.length} attachments in one message (the kernel's limit, SCM_MAX_FD, is ${MAX_FDS})`, 'sendmsg');
  }
  const a: Descriptor[] = [];
  const fds: number[] = [];
  list.forEach((x, i) => {
    const name = `attachments[${i}]`;
    if (typeof x === 'number') {
      fds.push(checkFd(x, name));
      a.push({ k: 'fd' });
    } else if (x instanceof DmaBuf) {
      fds.push(x.fd);
      a.push({ k: 'dmabuf', b: x.backend, size: x.size, name: x.name ?? '', exp: x.exporterName });
    } else if (isSyncFile(x)) {
      fds.push(x.fd);
      a.push({ k: 'sync_file' });
    } else {
      throw invalidArgType(name, 'a DmaBuf, a SyncFile or an fd number', x);
    }
  });
  let json: string | undefined;
  try {
    json = JSON.stringify({ v: WIRE_VERSION, m: message, a });
  } catch (e) {
    throw invalidArgType('message', 'JSON-serialisable', e instanceof Error ? e.message : e);
  }
  // (The envelope always serialises; a top-level value JSON drops would arrive as undefined.)
  if (message === undefined || typeof message === 'function' || typeof message === 'symbol') {
    throw invalidArgType('message', 'JSON-serialisable', message);
  }
  const bytes = encoder.encode(json);
  if (bytes.length > MAX_MESSAGE) {
    throw new DmaBufError('EMSGSIZE', `message of ${bytes.length} bytes (the limit is ${MAX_MESSAGE})`, 'sendmsg');
  }
  return { bytes, fds };
}

/** Rebuilds a received message; every fd ends up owned by an object or the caller, or closed. */
function decode(data: Uint8Array, fds: number[]): FdMessage {
  let parsed: { v?: unknown; m?: unknown; a?: unknown };
  try {
    parsed = JSON.parse(decoder.decode(data)) as typeof parsed;
  } catch {
    closeFds(fds);
    throw new DmaBufError('EPROTO', `not an FdChannel message (${data.length} bytes, ${fds.length} fds; they were closed)`, 'recvmsg');
  }
  const a = parsed?.a;
  if (parsed?.v !== WIRE_VERSION || !Array.isArray(a) || a.length !== fds.length) {
    closeFds(fds);
    throw new DmaBufError('EPROTO', `not an FdChannel v${WIRE_VERSION} message, or its fds do not match it (${fds.length} fds; they were closed)`, 'recvmsg');
  }
  const attachments: FdAttachment[] = [];
  let i = 0;
  try {
    for (; i < fds.length; i++) attachments.push(adopt(fds[i]!, a[i] as Descriptor));
  } catch (e) {
    // What was built is closed with its objects; the rest as plain fds.
    for (const x of attachments) {
      if (typeof x === 'number') closeFds([x]);
      else x.close();
    }
    closeFds(fds.slice(i));
    throw e;
  }
  return { message: parsed.m, attachments };
}

/**
 * The object for one received fd. Objects are built over a dup and `fd` is
 * closed only once one exists: on a failure `fd` is still open (and decode()
 * closes it), whichever step failed -- fromFd({ dup: false }) would leave it
 * unclear whether a late failure had already closed it.
 */
function adopt(fd: number, d: Descriptor): FdAttachment {
  let obj: DmaBuf | SyncFile;
  switch (d?.k) {
    case 'sync_file':
      obj = SyncFile.fromFd(fd, { dup: true });
      break;
    case 'dmabuf':
      obj =
        d.b !== 'emulated'
          ? DmaBuf.fromFd(fd, { dup: true })
          : DmaBuf.fromMemfd(fd, { size: d.size, name: d.name, exporterName: d.exp });
      break;
    default:
      return fd;
  }
  closeFds([fd]); // the object holds its own dup
  return obj;
}

interface Pending<T> {
  resolve(v: T): void;
  reject(e: unknown): void;
}
interface Receiver extends Pending<FdMessage> {
  cancel(): void;
}
interface Sender extends Pending<void> {
  bytes: Uint8Array;
  set: External | null;
}

// Brand check: the handle comes from the private slot of a real FdChannel.
let chSlot!: (v: unknown) => External | null;
function chHandle(v: unknown, op: string): External {
  const h = chSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'the channel is closed', op);
  return h;
}

/**
 * One end of a channel that carries messages with fds. Ends come from
 * `FdChannel.pair()`, `FdChannel.connect(path)`, a listener's `accept()`, or
 * `FdChannel.fromFd(fd)` (an end inherited from a parent, e.g. through stdio).
 */
export class FdChannel implements Disposable, AsyncIterable<FdMessage> {
  #h: External | null;
  #receivers: Receiver[] = [];
  #senders: Sender[] = [];
  #watch: External | null = null;
  #watchEvents = 0;
  #eof = false;
  static {
    chSlot = (v) => {
      if (!(typeof v === 'object' && v !== null && #h in v)) throw invalidArgType('this', 'an instance of FdChannel', v);
      return (v as FdChannel).#h;
    };
  }

  /** @internal */
  constructor(key: typeof kCreate, h: External) {
    if (key !== kCreate) throw new TypeError('Illegal constructor: use FdChannel.pair(), connect(), listen() or fromFd()');
    this.#h = h;
  }

  /** Two connected ends (socketpair): pass one to a worker or, by its `fd`, to a child process. */
  static pair(): [FdChannel, FdChannel] {
    const [a, b] = nb.chPair();
    return [new FdChannel(kCreate, a), new FdChannel(kCreate, b)];
  }

  /**
   * An end given to this process as an fd (a child's stdio slot, say). With
   * `{ dup: true }` (the default) the channel owns a dup and the caller keeps
   * `fd`. EINVAL unless `fd` is an AF_UNIX SOCK_SEQPACKET socket.
   */
  static fromFd(fd: number, opts?: { dup?: boolean }): FdChannel {
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    checkFd(fd, 'fd');
    const dup = opts?.dup ?? true;
    if (typeof dup !== 'boolean') throw invalidArgType('opts.dup', 'of type boolean', dup);
    return new FdChannel(kCreate, nb.chFromFd(fd, dup));
  }

  /** Connects to an `FdChannel.listen()` server at `path` (ENOENT, ECONNREFUSED, EACCES). */
  static connect(path: string): FdChannel {
    checkPath(path);
    return new FdChannel(kCreate, nb.chConnect(path));
  }

  /**
   * A server at `path` handing out channels (`accept()`, or `for await`).
   * The socket file gets `mode` (default 0o600: this user only) before it
   * accepts anyone; check `channel.peer` to refuse strangers.
   */
  static listen(path: string, opts?: { mode?: number; backlog?: number }): FdChannelServer {
    checkPath(path);
    if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw invalidArgType('opts', 'of type object', opts);
    const mode = opts?.mode ?? 0o600;
    if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw outOfRange('opts.mode', 'a file mode (0 to 0o7777)', mode);
    const backlog = opts?.backlog ?? 64;
    if (typeof backlog !== 'number' || !Number.isInteger(backlog) || backlog < 1 || backlog > 4096) throw outOfRange('opts.backlog', '>= 1 and <= 4096', backlog);
    return newServer(nb.chListen(path, mode, backlog), path);
  }

  /** The socket's fd (to hand to a child process); -1 once closed. */
  get fd(): number {
    const h = chSlot(this);
    return h ? nb.chFd(h) : -1;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return chSlot(this) === null;
  }

  /** The peer's pid, uid and gid (SO_PEERCRED), as of connect or pair. */
  get peer(): FdChannelPeer {
    return nb.chPeer(chHandle(this, 'getsockopt'));
  }

  /**
   * Sends `message` (JSON-serialisable) with `attachments` in one datagram.
   * DmaBufs and SyncFiles are sent as their fds (the receiver gets its own);
   * numbers are fds the caller keeps. Resolves once the kernel has the message;
   * never blocks the loop. EINVAL over 253 attachments, EMSGSIZE over 64 KiB of
   * JSON, EPIPE/ECONNRESET if the peer is gone, EBADF if closed meanwhile.
   */
  send(message: unknown, attachments?: FdAttachment[]): Promise<void> {
    let set: External | null = null;
    try {
      const h = chHandle(this, 'sendmsg');
      const { bytes, fds } = encode(message, attachments);
      // Dups held until sent: closing an attachment afterwards changes nothing.
      if (fds.length) set = nb.fdsetCreate(fds);
      if (this.#senders.length === 0 && nb.chSend(h, bytes, set)) {
        if (set) nb.fdsetClose(set);
        return Promise.resolve();
      }
      const held = set;
      set = null;
      return new Promise<void>((resolve, reject) => {
        this.#senders.push({ bytes, set: held, resolve, reject });
        this.#arm();
      });
    } catch (e) {
      if (set) nb.fdsetClose(set);
      return Promise.reject(e);
    }
  }

  /**
   * The next message, with its attachments rebuilt here. `timeout` rejects with
   * ETIMEDOUT, `signal` with an AbortError; the end of the stream (the peer
   * closed) with ECONNRESET; close() with EBADF. A message this side cannot
   * take whole (MSG_CTRUNC: out of fds) rejects with EMFILE, its fds closed.
   */
  receive(opts?: WaitOptions): Promise<FdMessage> {
    try {
      const h = chHandle(this, 'recvmsg');
      const { timeoutMs, signal } = parseWaitOptions(opts);
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      if (this.#receivers.length === 0) {
        const got = this.#tryReceive(h);
        if (got) return Promise.resolve(got);
      }
      if (this.#eof) return Promise.reject(eofError());
      if (timeoutMs === 0) return Promise.reject(timeoutError());
      return new Promise<FdMessage>((resolve, reject) => {
        let timer: { cancel(): void } | undefined;
        const onAbort = (): void => {
          r.cancel();
          reject(abortError(signal?.reason));
        };
        const r: Receiver = {
          resolve: (v) => {
            r.cancel();
            resolve(v);
          },
          reject: (e) => {
            r.cancel();
            reject(e);
          },
          cancel: () => {
            timer?.cancel();
            signal?.removeEventListener('abort', onAbort);
            const i = this.#receivers.indexOf(r);
            if (i >= 0) this.#receivers.splice(i, 1);
            this.#arm();
          },
        };
        this.#receivers.push(r);
        if (timeoutMs !== Infinity) {
          timer = waitTimer(timeoutMs, () => {
            r.cancel();
            reject(timeoutError());
          });
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#arm();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Messages until the peer closes the channel (or this end is closed). */
  async *[Symbol.asyncIterator](): AsyncIterator<FdMessage> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (e) {
        if (e instanceof DmaBufError && (e.code === 'ECONNRESET' || e.code === 'EBADF')) return;
        throw e;
      }
    }
  }

  /** One message if one is queued (null otherwise); sets #eof at the end of the stream. */
  #tryReceive(h: External): FdMessage | null {
    const r = nb.chRecv(h);
    if (!r) return null;
    if (r.eof) {
      this.#eof = true;
      return null;
    }
    return decode(r.data, r.fds);
  }

  /** Watches the fd for what the queues need: readable for receivers, writable for senders. */
  #arm(): void {
    const h = chSlot(this);
    const want = h ? (this.#receivers.length ? UV_READABLE : 0) | (this.#senders.length ? UV_WRITABLE : 0) : 0;
    if (want === this.#watchEvents && (want === 0) === (this.#watch === null)) return;
    if (this.#watch) {
      nb.chWatchCancel(this.#watch);
      this.#watch = null;
    }
    this.#watchEvents = want;
    if (!want || !h) return;
    try {
      this.#watch = nb.chWatch(h, want, (events: number, err?: DmaBufError) => {
        this.#watch = null;
        this.#watchEvents = 0;
        // libuv reports POLLERR as an error (UV_EBADF): here that is the
        // socket's pending error (the peer closed with our messages unread),
        // which the next sendmsg/recvmsg reports, and clears, with its errno.
        this.#pump(err ? UV_READABLE | UV_WRITABLE : events);
      });
    } catch (e) {
      this.#watchEvents = 0;
      this.#failAll(e);
    }
  }

  #pump(events: number): void {
    const h = chSlot(this);
    if (!h) return;
    if (events & UV_WRITABLE) {
      while (this.#senders.length) {
        const s = this.#senders[0]!;
        let sent: boolean;
        try {
          sent = nb.chSend(h, s.bytes, s.set);
        } catch (e) {
          this.#senders.shift();
          if (s.set) nb.fdsetClose(s.set);
          s.reject(e);
          continue;
        }
        if (!sent) break;
        this.#senders.shift();
        if (s.set) nb.fdsetClose(s.set);
        s.resolve();
      }
    }
    if (events & UV_READABLE || events === 0) {
      while (this.#receivers.length && !this.#eof) {
        let m: FdMessage | null;
        try {
          m = this.#tryReceive(h);
        } catch (e) {
          this.#receivers[0]!.reject(e);
          continue;
        }
        if (!m) break;
        this.#receivers[0]!.resolve(m);
      }
      if (this.#eof) for (const r of [...this.#receivers]) r.reject(eofError());
    }
    this.#arm();
  }

  #failAll(e: unknown): void {
    for (const r of [...this.#receivers]) r.reject(e);
    for (const s of this.#senders.splice(0)) {
      if (s.set) nb.fdsetClose(s.set);
      s.reject(e);
    }
  }

  /** Closes this end: pending sends and receives reject with EBADF; the peer sees the end of the stream. Idempotent. */
  close(): void {
    const h = chSlot(this);
    if (!h) return;
    if (this.#watch) nb.chWatchCancel(this.#watch);
    this.#watch = null;
    this.#watchEvents = 0;
    this.#h = null;
    this.#failAll(new DmaBufError('EBADF', 'the channel was closed', 'close'));
    nb.chClose(h);
  }

  [Symbol.dispose](): void {
    FdChannel.prototype.close.call(this);
  }
}

function eofError(): DmaBufError {
  return new DmaBufError('ECONNRESET', 'the peer closed the channel', 'recvmsg');
}
function timeoutError(): DmaBufError {
  return new DmaBufError('ETIMEDOUT', 'no message within the timeout', 'recvmsg');
}

let newServer!: (h: External, path: string) => FdChannelServer;

/** A listening socket handing out FdChannels (`FdChannel.listen()`). */
export class FdChannelServer implements Disposable, AsyncIterable<FdChannel> {
  #h: External | null;
  readonly path: string;
  #waiters: Pending<FdChannel>[] = [];
  #watch: External | null = null;
  static {
    newServer = (h, path) => new FdChannelServer(kCreate, h, path);
  }

  /** @internal */
  constructor(key: typeof kCreate, h: External, path: string) {
    if (key !== kCreate) throw new TypeError('Illegal constructor: use FdChannel.listen()');
    this.#h = h;
    this.path = path;
  }

  /** The next connection. Rejects with EBADF once the server is closed. */
  accept(): Promise<FdChannel> {
    const h = this.#h;
    if (!h) return Promise.reject(new DmaBufError('EBADF', 'the server is closed', 'accept4'));
    try {
      if (this.#waiters.length === 0) {
        const c = nb.chAccept(h);
        if (c) return Promise.resolve(new FdChannel(kCreate, c));
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<FdChannel>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#arm();
    });
  }

  #arm(): void {
    const h = this.#h;
    if (!h || this.#watch || this.#waiters.length === 0) return;
    try {
      this.#watch = nb.chWatch(h, UV_READABLE, (_events: number, err?: DmaBufError) => {
        this.#watch = null;
        if (err) return this.#failAll(err);
        while (this.#h && this.#waiters.length) {
          let c: External | null;
          try {
            c = nb.chAccept(this.#h);
          } catch (e) {
            this.#waiters.shift()!.reject(e);
            continue;
          }
          if (!c) break;
          this.#waiters.shift()!.resolve(new FdChannel(kCreate, c));
        }
        this.#arm();
      });
    } catch (e) {
      this.#failAll(e);
    }
  }

  #failAll(e: unknown): void {
    for (const w of this.#waiters.splice(0)) w.reject(e);
  }

  /** Connections until the server is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<FdChannel> {
    for (;;) {
      try {
        yield await this.accept();
      } catch (e) {
        if (e instanceof DmaBufError && e.code === 'EBADF') return;
        throw e;
      }
    }
  }

  /** Stops listening and removes the socket file; pending accepts reject with EBADF. Idempotent. */
  close(): void {
    const h = this.#h;
    if (!h) return;
    this.#h = null;
    if (this.#watch) nb.chWatchCancel(this.#watch);
    this.#watch = null;
    this.#failAll(new DmaBufError('EBADF', 'the server was closed', 'close'));
    nb.chClose(h);
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }

  [Symbol.dispose](): void {
    FdChannelServer.prototype.close.call(this);
  }
}
