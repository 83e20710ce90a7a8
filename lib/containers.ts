// Fence containers: dma_fence_array, dma_fence_chain and dma_fence_unwrap for
// JavaScript. Each container is a Fence (it can be waited on, signalled into a
// Resv, exported...); its members are ordinary Fence objects, each holding its
// own reference.
import { DmaBufError } from './errors';
import { invalidArgType, outOfRange, toU64 } from './internal/args';
import { binding, type Handle } from './internal/binding';
import { drain } from './internal/dispatch';
import { Fence, adoptFence as adoptAs, adoptNext, handleOf, importFenceHandle, isAdopting, isFence, kindClasses } from './fence';

const KIND_ARRAY = 1;
const KIND_CHAIN = 2;

/** @internal A Fence (of the right subclass) adopting a native reference. */
export function adoptFence(h: Handle): Fence {
  switch (binding.fenceKind(h)) {
    case KIND_ARRAY:
      return adoptAs(h, FenceArray);
    case KIND_CHAIN:
      return adoptAs(h, FenceChain);
    default:
      return adoptAs(h);
  }
}

function checkFence(name: string, v: unknown): Fence {
  if (!isFence(v)) throw invalidArgType(name, 'an instance of Fence', v);
  return v;
}

/**
 * The tokens of an array of fences, read by index: a hole or a non-fence is a
 * TypeError naming its index (map() would skip holes).
 */
function fenceTokens(name: string, fences: unknown): Handle[] {
  if (!Array.isArray(fences)) throw invalidArgType(name, 'an array of Fence', fences);
  const hs: Handle[] = [];
  for (let i = 0; i < fences.length; i++) hs.push(handleOf(checkFence(`${name}[${i}]`, fences[i])));
  return hs;
}

function kind(f: Fence): number {
  return binding.fenceKind(handleOf(f));
}

export interface FenceArrayInit {
  /** Context of the array; default: a new one (Fence.allocContext()). */
  context?: bigint;
  /** Seqno of the array: 32 bits, as the kernel's `unsigned seqno`; default 1. */
  seqno?: bigint | number;
  /** Signal once any member has signalled instead of all (signal_on_any); default false. */
  signalOnAny?: boolean;
}

/**
 * dma_fence_array: one fence that signals once every member has (first member
 * error wins), or once any has with `signalOnAny`. Members must be plain
 * fences: arrays are flat.
 */
export class FenceArray extends Fence {
  constructor(fences: Fence[], init?: FenceArrayInit) {
    // Adopting (adoptFence): the reference is already made; else create it
    // and let Fence's constructor adopt it.
    if (isAdopting()) super();
    else super(adoptNext(FenceArray.#create(fences, init)));
  }

  static #create(fences: unknown, init: unknown): Handle {
    const hs = fenceTokens('fences', fences);
    if (hs.length === 0) throw new DmaBufError('EINVAL', 'a fence array needs at least one fence', 'dma_fence_array_create');
    hs.forEach((h, i) => {
      if (binding.fenceKind(h) !== 0) {
        throw new DmaBufError('EINVAL', `fences[${i}] is a container: arrays must be flat (unwrap it)`, 'dma_fence_array_create');
      }
    });
    if (init !== undefined && (typeof init !== 'object' || init === null || Array.isArray(init))) {
      throw invalidArgType('init', 'of type object', init);
    }
    const { context, seqno, signalOnAny } = (init ?? {}) as FenceArrayInit;
    if (context !== undefined && typeof context !== 'bigint') throw invalidArgType('init.context', 'of type bigint', context);
    if (signalOnAny !== undefined && typeof signalOnAny !== 'boolean') {
      throw invalidArgType('init.signalOnAny', 'of type boolean', signalOnAny);
    }
    const ctx = context === undefined ? Fence.allocContext() : toU64('init.context', context);
    const sn = seqno === undefined ? 1n : toU64('init.seqno', seqno);
    if (sn > 0xffffffffn) throw outOfRange('init.seqno', '>= 0 and <= 4294967295 (an array seqno is 32 bits)', seqno);
    const h = binding.fenceArrayCreate(hs, ctx, sn, signalOnAny === true);
    return h;
  }

  /** Adopts a handle of a fence array exported by exportHandle() (once); EINVAL if it is not an array. */
  static override importHandle(h: bigint): FenceArray {
    return importFenceHandle(h, KIND_ARRAY) as FenceArray;
  }

  /** Whether `f` is a fence array (dma_fence_is_array). */
  static is(f: Fence): boolean {
    return kind(checkFence('f', f)) === KIND_ARRAY;
  }

  /** The members, each a new Fence object with its own reference. */
  get fences(): Fence[] {
    return (binding.fenceArrayMembers(handleOf(this)) ?? []).map(adoptFence);
  }

  /** Number of members. */
  get length(): number {
    const hs = binding.fenceArrayMembers(handleOf(this)) ?? [];
    for (const h of hs) release(h);
    return hs.length;
  }

  /** Whether every member is on `context` (dma_fence_match_context). */
  matchContext(context: bigint): boolean {
    return binding.fenceMatchContext(handleOf(this), toU64('context', context));
  }

  /** 0 or the first member's negative errno; never the pending sentinel. */
  override get error(): number {
    return binding.fenceGetError(handleOf(this));
  }
}

/**
 * dma_fence_chain: one point on a timeline. It signals once its fence and
 * every earlier point's fence have. Seqnos are 64-bit.
 */
export class FenceChain extends Fence {
  constructor(prev: Fence | null, fence: Fence, seqno: bigint | number) {
    if (isAdopting()) super();
    else super(adoptNext(FenceChain.#create(prev, fence, seqno)));
  }

  static #create(prev: unknown, fence: unknown, seqno: unknown): Handle {
    if (prev !== null && !isFence(prev)) throw invalidArgType('prev', 'an instance of Fence or null', prev);
    const ph = prev === null ? 0 : handleOf(prev);
    const fh = handleOf(checkFence('fence', fence));
    const sn = toU64('seqno', seqno);
    if (binding.fenceKind(fh) === KIND_CHAIN) {
      throw new DmaBufError('EINVAL', 'the contained fence must not be a chain node', 'dma_fence_chain_init');
    }
    const h = binding.fenceChainCreate(ph, fh, sn);
    return h;
  }

  /** Adopts a handle of a chain node exported by exportHandle() (once); EINVAL if it is not a chain node. */
  static override importHandle(h: bigint): FenceChain {
    return importFenceHandle(h, KIND_CHAIN) as FenceChain;
  }

  /** Whether `f` is a chain node (dma_fence_is_chain). */
  static is(f: Fence): boolean {
    return kind(checkFence('f', f)) === KIND_CHAIN;
  }

  /** The point's own fence (dma_fence_chain_contained). */
  get fence(): Fence {
    const parts = binding.fenceChainParts(handleOf(this))!;
    if (parts[0]) release(parts[0]);
    return adoptFence(parts[1]);
  }

  /** The previous point (or fence), null at the start or once it was collected. */
  get prev(): Fence | null {
    const parts = binding.fenceChainParts(handleOf(this))!;
    release(parts[1]);
    return parts[0] ? adoptFence(parts[0]) : null;
  }

  /**
   * The node to wait on for point `seqno` (dma_fence_chain_find_seqno): a
   * chain node, or null once everything up to `seqno` has signalled. Seqno 0
   * returns this node. Throws DmaBufError EINVAL for a point in the future.
   */
  findSeqno(seqno: bigint | number): Fence | null {
    const h = binding.fenceChainFindSeqno(handleOf(this), toU64('seqno', seqno));
    drain();
    return h === 0 ? null : adoptFence(h);
  }

  /**
   * Visits this node and every unsignalled earlier one (dma_fence_chain_for_each);
   * signalled links are collected on the way. Each yielded Fence is a new reference.
   */
  *walk(): IterableIterator<Fence> {
    let cur: Fence = adoptFence(binding.fenceDup(handleOf(this)));
    for (;;) {
      yield cur;
      const next = binding.fenceChainWalk(handleOf(cur));
      drain();
      if (!next) return;
      cur = adoptFence(next);
    }
  }
}

function release(h: Handle): void {
  binding.fencePutMany(Float64Array.of(h), 1);
}

/**
 * The leaf fences of `f` (dma_fence_unwrap_for_each): the members of arrays
 * inside the points of a chain, or `f` itself if it is a plain fence. Signalled
 * points behind a chain's head are skipped. Each yielded Fence holds its own
 * reference. The leaves are collected when unwrap() is called.
 */
export function unwrap(f: Fence): Iterable<Fence> {
  const hs = binding.fenceUnwrap(handleOf(checkFence('f', f)));
  drain();
  return (function* leaves() {
    let i = 0;
    try {
      for (; i < hs.length; i++) yield adoptFence(hs[i]!);
    } finally {
      for (i++; i < hs.length; i++) release(hs[i]!); // stopped early
    }
  })();
}

/**
 * dma_fence_unwrap_merge: one fence for all the pending leaves of `fences`.
 * Signalled leaves are dropped, duplicates per context reduced to the latest.
 * Returns the single pending leaf, a new FenceArray (new context, seqno 1), or
 * when nothing is pending a new signalled stub carrying the latest timestamp;
 * null only when called with no fences.
 */
export function merge(...fences: Fence[]): Fence | null {
  const hs = fenceTokens('fences', fences);
  if (hs.length === 0) return null;
  const h = binding.fenceMerge(hs);
  drain();
  return adoptFence(h);
}

/**
 * dma_fence_dedup_array: the latest fence of each context, in ascending
 * context order (each a new reference).
 */
export function dedup(fences: Fence[]): Fence[] {
  const hs = fenceTokens('fences', fences);
  return binding.fenceDedup(hs).map(adoptFence);
}

kindClasses.array = FenceArray;
kindClasses.chain = FenceChain;
