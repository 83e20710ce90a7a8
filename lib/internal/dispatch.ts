// Delivery of native fence callbacks to JS. Native code only knows callback
// ids; this registry maps them to JS work. Callbacks fired on another thread
// arrive through the addon's uv_async; callbacks fired on this thread are
// queued natively and drained right after the call that signalled (`drain()`),
// so they run before that call returns.
import { binding, type CallbackToken, type Handle } from './binding';
import { DmaBufError } from '../errors';

/** One pending native callback registration. */
export interface Registration {
  id: number;
  token: CallbackToken;
  /** Runs on the JS thread when the fence signals. */
  fire(): void;
  /** Stays registered after firing (move_notify can fire many times); unreserve() ends it. */
  repeating?: boolean;
}

const registry = new Map<number, Registration>();
let nextId = 1;
const pending = new Uint8Array(1);
let keepAlive = 0;

function dispatch(ids: number[]): void {
  for (const id of ids) {
    const r = registry.get(id);
    if (!r) continue;
    if (!r.repeating) registry.delete(id);
    try {
      r.fire();
    } catch (e) {
      // One throwing callback must not starve the others: surface it as an
      // uncaught exception, like an EventEmitter listener's.
      queueMicrotask(() => {
        throw e;
      });
    }
  }
}

binding.envInit(dispatch, pending, DmaBufError);

/** Runs callbacks this thread's last native call fired. */
export function drain(): void {
  if (pending[0]) binding.envDrain();
}

/**
 * Registers `fire` on a fence. Returns null if the fence is already signalled
 * (fire is not called), like dma_fence_add_callback's -ENOENT; throws
 * DmaBufError ENOMEM when the registration cannot be made.
 */
export function register(h: Handle, fire: () => void): Registration | null {
  const id = nextId;
  nextId = nextId >= 0xffffffff ? 1 : nextId + 1;
  const r = binding.fenceAddCallback(h, id);
  if (r === 0) {
    drain(); // enable_signaling may have signalled the fence right here
    return null;
  }
  const reg: Registration = { id, token: r, fire };
  registry.set(id, reg);
  return reg;
}

/**
 * Reserves an id for a native completion that is not a fence callback (an
 * issuer unload finishing on its own thread): `fire` runs on this thread, from
 * the event loop, once native code delivers the id. It cannot be cancelled.
 */
export function reserve(fire: () => void): number {
  const id = nextId;
  nextId = nextId >= 0xffffffff ? 1 : nextId + 1;
  registry.set(id, { id, token: 0, fire });
  return id;
}

/**
 * Like reserve(), for a native event that can fire any number of times (an
 * attachment's move_notify): `fire` runs once per delivery until unreserve().
 */
export function reserveRepeating(fire: () => void): number {
  const id = nextId;
  nextId = nextId >= 0xffffffff ? 1 : nextId + 1;
  registry.set(id, { id, token: 0, fire, repeating: true });
  return id;
}

/** Forgets an id from reserve() or reserveRepeating(); later deliveries are dropped. */
export function unreserve(id: number): void {
  registry.delete(id);
}

/** Unregisters; true if it was removed before it fired. */
export function unregister(h: Handle, reg: Registration): boolean {
  if (!registry.has(reg.id)) return false; // already delivered
  if (!binding.fenceRemoveCallback(h, reg.token)) return false; // fired; delivery pending
  registry.delete(reg.id);
  return true;
}

/** Keeps the event loop alive while a wait is pending. */
export function holdLoop(on: boolean): void {
  if (on) {
    if (keepAlive++ === 0) binding.envKeepAlive(true);
  } else if (--keepAlive === 0) {
    binding.envKeepAlive(false);
  }
}
