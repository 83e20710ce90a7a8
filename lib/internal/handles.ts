// Fence references held by JS objects. A native reference is a token (a slot
// index and generation in the environment's native handle table, never an
// address: native code validates every token it is given) kept in a slot of a
// page (a Float64Array of 4096 slots; environment teardown drops whatever the
// native table still holds). Slots are handed out in blocks of 256; a JS Fence remembers its
// block and slot. One FinalizationRegistry entry per block, not per fence
// (which would cost ~400 ns each; per block of 64 it was still ~4 ns a fence),
// releases whatever its fences did not dispose
// once all of them are garbage, and the block's slots are then reused. A block
// whose 256 slots have all been disposed is reused at once instead: its fences
// are told by the block itself (its page becomes RETIRED, where every slot
// reads 0, "disposed"), so a page is allocated only when more than its 4096
// fences are alive at once.
// Default fences are created 256 at a time and dispose() batches its puts, so
// the common `new Fence(); signal(); dispose()` costs one native call.
import { binding } from './binding';
import './dispatch'; // the environment must be initialised before pages register

// Read once: `binding.x` is a dictionary lookup (the exports object is too
// large for V8's fast properties).
const { fenceCreateMany, fencePutMany } = binding;

const BLOCK = 256;
const PAGE = 4096;

/** A block of 256 reference slots in a page; 0 marks an empty or released slot. */
export interface Block {
  /** The page, or RETIRED once the block's slots went back to the free list. */
  page: Float64Array;
  readonly id: number; // page index * (PAGE / BLOCK) + block index
  used: number; // next free slot, absolute within the page
  readonly end: number;
  live: number; // slots holding a reference
}

const pages: Float64Array[] = [];
const freeBlocks: number[] = [];
/** What a retired block's fences read: every slot 0 (never written). */
const RETIRED = new Float64Array(PAGE);

const finalizer = new FinalizationRegistry<number>((id) => {
  const page = pages[Math.floor(id / (PAGE / BLOCK))]!;
  const start = (id % (PAGE / BLOCK)) * BLOCK;
  fencePutMany(page.subarray(start, start + BLOCK), BLOCK);
  freeBlocks.push(id);
});

function newBlock(): Block {
  let id = freeBlocks.pop();
  if (id === undefined) {
    const page = new Float64Array(PAGE);
    pages.push(page);
    const first = (pages.length - 1) * (PAGE / BLOCK);
    for (let k = PAGE / BLOCK - 1; k > 0; k--) freeBlocks.push(first + k);
    id = first;
  }
  const start = (id % (PAGE / BLOCK)) * BLOCK;
  const b: Block = { page: pages[Math.floor(id / (PAGE / BLOCK))]!, id, used: start, end: start + BLOCK, live: 0 };
  finalizer.register(b, id, b);
  return b;
}

// Every slot of `b` was handed out and released: its range is free for a new
// block now (nothing is left for the finalizer to put).
function retire(b: Block): void {
  finalizer.unregister(b);
  b.page = RETIRED;
  freeBlocks.push(b.id);
}

let current = newBlock();

// Fresh default fences, created a block at a time (teardown frees the ones
// never handed out: they are in the native table).
const fresh = new Float64Array(BLOCK);
let freshNext = BLOCK;

// References dropped by dispose(), put a batch at a time (and before the next
// macrotask, through a microtask).
const puts = new Float64Array(256);
let putCount = 0;

export function flushPuts(): void {
  if (putCount === 0) return;
  const n = putCount;
  putCount = 0;
  fencePutMany(puts, n);
}

/** The block new references go into (it has a free slot). */
export function currentBlock(): Block {
  if (current.used === current.end) current = newBlock();
  return current;
}

/** Stores a reference in the next free slot of `b` (from currentBlock()) and returns the slot. */
export function claim(b: Block, ref: number): number {
  const i = b.used++;
  b.page[i] = ref;
  b.live++;
  return i;
}

/** A new default fence reference (context 0, seqno 0, inline lock). */
export function takeDefault(): number {
  if (freshNext === BLOCK) {
    fenceCreateMany(fresh);
    freshNext = 0;
  }
  const ref = fresh[freshNext]!;
  fresh[freshNext++] = 0;
  return ref;
}

/** Drops the reference in a slot (batched). */
export function release(b: Block, i: number): void {
  const ref = b.page[i]!;
  b.page[i] = 0;
  if (--b.live === 0 && b.used === b.end) retire(b);
  if (putCount === 0) queueMicrotask(flushPuts);
  puts[putCount++] = ref;
  if (putCount === puts.length) flushPuts();
}
