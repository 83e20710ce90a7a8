// Fence issuers: what the kernel calls a driver. An Issuer is either a loaded
// module (a shared object built against <dmabuf/issuer.h>; docs/issuers.md) or
// a names-only issuer for JS code. Fences come from createFence() or
// `new Fence({ issuer })`. unload() runs Linux 7.1's unload protocol on a
// thread of its own and never blocks the event loop.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DmaBufError } from './errors';
import { adoptFence, Fence } from './fence';
import { invalidArgType, invalidArgValue, outOfRange, toI64, toTimeoutNs } from './internal/args';
import { binding, type External, type Handle, type NativeIssuerInfo } from './internal/binding';
import { drain, holdLoop, reserve, unreserve } from './internal/dispatch';
import { flushPuts } from './internal/handles';

export type IssuerKind = 'module' | 'names';
/** live: issuing fences; draining: unload started (or timed out), new fences refused; unloaded. */
export type IssuerState = 'live' | 'draining' | 'unloaded';
/** The example modules of native/issuers/ (built only in source builds). */
export type ExampleIssuer = 'names' | 'ring' | 'polled' | 'pinned';

export interface IssuerNames {
  /** Reported by its fences until they signal; 1-255 bytes of UTF-8, no NUL. */
  driverName: string;
  /** Likewise; 1-255 bytes, no NUL. */
  timelineName: string;
}

export interface IssuerLoadOptions {
  /**
   * Pre-7.1 behaviour, only to demonstrate the historical crash: the module's
   * fences keep their ops after signalling and unload() does not wait for them,
   * so touching such a fence after unload() (dropping it) kills the process.
   */
  keepOps?: boolean;
}

export interface IssuerFenceInit {
  /** Default: the issuer's own timeline context. A module may ignore it. */
  context?: bigint;
  /** Default: the timeline's next seqno. A module may ignore it. */
  seqno?: bigint | number;
  /** 64-bit seqno ordering (dma_fence_init64). */
  seqno64?: boolean;
}

export interface UnloadOptions {
  /** How long to wait for fences that pin the module, in ms (default 10000; Infinity: for ever). */
  timeout?: number;
}

/** Durations of the phases of the last completed unload, in nanoseconds. */
export interface IssuerUnloadStats {
  signalAllNs: number;
  drainNs: number;
  graceNs: number;
  shutdownNs: number;
  closeNs: number;
  totalNs: number;
}

// Read once: `binding.x` is a dictionary lookup (the addon's exports object is
// too large for V8's fast properties).
const { issuerCreateFence } = binding;

// Issuer.load() hands its new handle to the constructor here: a module-private
// slot, so nothing passed to `new Issuer()` can make it adopt a handle.
let adoptingIssuer: External | null = null;
const STATES: readonly IssuerState[] = ['live', 'draining', 'unloaded'];
const EXAMPLES: readonly string[] = ['names', 'ring', 'polled', 'pinned'];
const DEFAULT_UNLOAD_TIMEOUT_MS = 10000;

function checkOptions<T extends object>(name: string, v: unknown): Partial<T> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgType(name, 'of type object', v);
  return v as Partial<T>;
}

function checkParamName(name: unknown): string {
  if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
  return name;
}

/**
 * @internal Brand check (like fence.ts's): `instanceof` accepts objects made
 * with Object.create(Issuer.prototype), whose private fields then throw an
 * uncoded TypeError on first use.
 */
export let isIssuer!: (v: unknown) => v is Issuer;
/** What never changes about an issuer; TypeError for anything but an Issuer. */
let infoOf!: (v: unknown) => NativeIssuerInfo;
/** The handle slot (null once disposed); TypeError for anything but an Issuer. */
let issuerSlot!: (v: unknown) => External | null;
function issuerHandle(v: unknown): External {
  const h = issuerSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'issuer is disposed');
  return h;
}

/** A fence issuer: a loaded module or a names-only issuer. */
export class Issuer implements Disposable, AsyncDisposable {
  #h: External | null;
  readonly #info: NativeIssuerInfo;
  static {
    isIssuer = (v): v is Issuer => typeof v === 'object' && v !== null && #info in v;
    infoOf = (v) => {
      if (!isIssuer(v)) throw invalidArgType('this', 'an instance of Issuer', v);
      return v.#info;
    };
    issuerSlot = (v) => {
      if (!isIssuer(v)) throw invalidArgType('this', 'an instance of Issuer', v);
      return v.#h;
    };
  }

  /** A names-only issuer: no module; its fences carry these names until they signal. */
  constructor(names: IssuerNames) {
    const adopted = adoptingIssuer;
    adoptingIssuer = null;
    if (adopted !== null) {
      this.#h = adopted;
    } else {
      if (typeof names !== 'object' || names === null || Array.isArray(names)) {
        throw invalidArgType('names', 'of type object', names);
      }
      const { driverName, timelineName } = names;
      if (typeof driverName !== 'string') throw invalidArgType('names.driverName', 'of type string', driverName);
      if (typeof timelineName !== 'string') {
        throw invalidArgType('names.timelineName', 'of type string', timelineName);
      }
      this.#h = binding.issuerCreateNamed(driverName, timelineName);
    }
    this.#info = binding.issuerInfo(this.#h);
    Object.freeze(this.#info.params);
  }

  /**
   * Loads an issuer module (dlopen + its dmabuf_issuer_init), like insmod. A
   * path without '/' is relative to the working directory, never searched.
   * Errors (DmaBufError): ENOENT/EACCES (no such file), EISDIR, ENOEXEC (not a
   * loadable shared object: the message carries dlerror()), ENOSYS (no issuer
   * entry points), EPROTO (built for another ABI version), EINVAL (incomplete
   * module), or the module init's own errno.
   */
  static load(path: string, opts?: IssuerLoadOptions): Issuer {
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const { keepOps } = checkOptions<IssuerLoadOptions>('opts', opts);
    if (keepOps !== undefined && typeof keepOps !== 'boolean') {
      throw invalidArgType('opts.keepOps', 'of type boolean', keepOps);
    }
    adoptingIssuer = binding.issuerLoad(path, keepOps === true);
    return new Issuer(undefined as unknown as IssuerNames);
  }

  /**
   * The path of a built example module (native/issuers/<name>.c). They are
   * built by the CMake (cmake-js) source build into build/issuers/, or the
   * directory named by $DMABUF_ISSUER_DIR; prebuilt packages do not ship them
   * (DmaBufError ENOENT).
   */
  static examplePath(name: ExampleIssuer): string {
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
    if (!EXAMPLES.includes(name)) {
      throw invalidArgValue('name', `must be one of ${EXAMPLES.map((n) => `'${n}'`).join(', ')}`, name);
    }
    const dir = process.env['DMABUF_ISSUER_DIR'] || path.join(__dirname, '..', 'build', 'issuers');
    const file = path.join(dir, `issuer_${name}.so`);
    if (!existsSync(file)) {
      throw new DmaBufError(
        'ENOENT',
        `example issuer '${name}' is not built (no ${file}); the examples exist only in source builds ` +
          '(npx cmake-js compile in the package directory)',
        'Issuer.examplePath',
      );
    }
    return file;
  }

  /** 'module' (loaded with Issuer.load) or 'names'. */
  get kind(): IssuerKind {
    return infoOf(this).kind;
  }
  /** The module's name (or its file name), or a names issuer's driver name. */
  get name(): string {
    return infoOf(this).name;
  }
  /** The path the module was loaded from; null for names issuers. */
  get path(): string | null {
    return infoOf(this).path;
  }
  /** A names issuer's timeline name; null for modules (each fence asks the module). */
  get timelineName(): string | null {
    return infoOf(this).timelineName;
  }
  /** The module's parameter names (empty for names issuers). */
  get params(): readonly string[] {
    return infoOf(this).params;
  }
  /** Whether the module runs with pre-7.1 semantics (loaded with keepOps, or flagged by itself). */
  get keepOps(): boolean {
    return infoOf(this).keepOps;
  }

  get state(): IssuerState {
    return STATES[binding.issuerState(issuerHandle(this))]!;
  }
  /** Live fences of this module whose ops have release/wait: unload() waits for them. */
  get pinnedFences(): number {
    return binding.issuerPinned(issuerHandle(this));
  }
  /** Fences created through this issuer since it was loaded (kept after unload). */
  get fencesCreated(): number {
    return binding.issuerCreated(issuerHandle(this));
  }
  /** Phase durations of the unload that completed; null until a module has been unloaded. */
  get lastUnloadStats(): IssuerUnloadStats | null {
    const h = issuerHandle(this);
    if (this.#info.kind !== 'module' || binding.issuerState(h) !== 2) return null;
    const [signalAllNs, drainNs, graceNs, shutdownNs, closeNs, totalNs] = binding.issuerStats(h);
    return { signalAllNs, drainNs, graceNs, shutdownNs, closeNs, totalNs };
  }

  /**
   * A new fence of this issuer: the same as `new Fence({ ...init, issuer: this })`
   * (same validation). ENODEV once unload() has started.
   */
  createFence(init?: IssuerFenceInit): Fence {
    // No init: nothing to validate, and the issuer's timeline supplies context and seqno.
    if (init === undefined) return adoptFence(issuerCreateFence(issuerHandle(this)));
    issuerSlot(this);
    return new Fence({ ...checkOptions<IssuerFenceInit>('init', init), issuer: this });
  }

  /** @internal For `new Fence({ issuer })`: arguments already validated. */
  newFenceHandle(context: bigint | undefined, seqno: bigint | undefined, seqno64: boolean): Handle {
    return issuerCreateFence(issuerHandle(this), context, seqno, seqno64);
  }

  /** Sets a module parameter (an int64). ENOENT: no such parameter; ENODEV: unloading. */
  setParam(name: string, value: number | bigint): void {
    const h = issuerHandle(this);
    checkParamName(name);
    let v: bigint;
    if (typeof value === 'bigint') {
      v = toI64('value', value);
    } else if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw outOfRange('value', 'a safe integer', value);
      v = BigInt(value);
    } else {
      throw invalidArgType('value', 'of type number or bigint', value);
    }
    try {
      binding.issuerSetParam(h, name, v);
    } finally {
      drain(); // a parameter may signal fences right here (the polled example's `advance`)
    }
  }

  /** Reads a module parameter. ENOENT: no such parameter; ENODEV: unloading. */
  getParam(name: string): bigint {
    const h = issuerHandle(this);
    checkParamName(name);
    return binding.issuerGetParam(h, name);
  }

  /**
   * Unloads the module (rmmod), on a thread of its own: new fences are refused,
   * the module signals what it still owns, fences with release/wait ops (they
   * pin the module) are waited for up to `timeout`, one RCU grace period
   * passes, the module shuts down and is unmapped. Fences it signalled keep
   * working. Rejects with DmaBufError EBUSY (naming how many fences pin the
   * module) on timeout; the issuer then stays draining and unload() can be
   * called again. Resolves at once for a names issuer (which then refuses new
   * fences) or an unloaded one.
   */
  unload(opts?: UnloadOptions): Promise<void> {
    try {
      const h = issuerHandle(this);
      const { timeout } = checkOptions<UnloadOptions>('opts', opts);
      const timeoutNs = timeout === undefined ? DEFAULT_UNLOAD_TIMEOUT_MS * 1e6 : toTimeoutNs('opts.timeout', timeout);
      // dispose() batches its puts: fences disposed so far must not pin the module.
      flushPuts();
      return new Promise<void>((resolve, reject) => {
        let job: External | undefined;
        const id = reserve(() => {
          holdLoop(false);
          try {
            binding.issuerUnloadResult(job!);
            resolve();
          } catch (e) {
            reject(e);
          }
        });
        try {
          job = binding.issuerUnload(h, timeoutNs, id);
        } catch (e) {
          unreserve(id);
          reject(e);
          return;
        }
        holdLoop(true);
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Whether dispose() has been called. */
  get disposed(): boolean {
    return issuerSlot(this) === null;
  }

  /**
   * Drops this object's reference. It does not unload a module: like a kernel
   * module, a loaded module stays loaded (held by the module registry) until
   * unload(), even with no Issuer object left. Fences keep working. Idempotent.
   */
  dispose(): void {
    const h = issuerSlot(this);
    if (h) binding.issuerDispose(h);
    this.#h = null;
  }

  [Symbol.dispose](): void {
    Issuer.prototype.dispose.call(this);
  }

  /**
   * `await using issuer = Issuer.load(path)`: unload() (rejecting as it does, EBUSY
   * when fences still pin the module), then dispose(). Nothing to do once disposed.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (issuerSlot(this) === null) return; // brand-checked: TypeError for a non-Issuer
    try {
      await Issuer.prototype.unload.call(this);
    } finally {
      Issuer.prototype.dispose.call(this);
    }
  }
}
