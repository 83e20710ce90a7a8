// The raw addon, typed: every function the addon exports is declared here, once
// (test/binding.test.ts checks the declared names against the loaded addon).
// Only the classes in this package call it; they validate every argument first,
// so the native side receives flat, checked values. A native failure is thrown
// as a DmaBufError (built in C++ from the class handed to envInit()); results
// are values, never failures.
import * as path from 'node:path';
import type { AttachmentStats } from '../attachment';
import type { DmaBufError } from '../errors';
import type { RawHeapInfo } from '../heap';
import type { PlatformStats } from '../platform';
import type { SyncFileInfo } from '../sync_file';

/**
 * A native fence reference: a token (slot index and generation) in the
 * environment's handle table (native/addon/handle_table.h); never an address.
 */
export type Handle = number;
/** An opaque native handle (a Node-API External) for other objects. */
export type External = { readonly __external: unique symbol };
/** A registered callback: a token in the environment's callback table (0: none). */
export type CallbackToken = number;
/** What never changes about an issuer. */
export interface NativeIssuerInfo {
  kind: 'module' | 'names';
  name: string;
  path: string | null;
  timelineName: string | null;
  params: string[];
  keepOps: boolean;
}

export interface NativeBinding {
  // --- environment and diagnostics (native/addon/env_binding.cc) ---------------
  /** Once per environment: the callback dispatcher, its pending flag, and the class native failures are built from. */
  envInit(dispatch: (ids: number[]) => void, pending: Uint8Array, errorClass: typeof DmaBufError): void;
  envDrain(): void;
  envKeepAlive(on: boolean): void;
  warnCount(): number;
  rcuBarrier(): void;
  deferredPending(): number;
  liveFences(): number;
  spareFences(): number;
  diagFailCallbackAlloc(nth: number, times: number): void;
  /** Tests: a kernel-backend handle over a dup of any fd, unchecked. */
  diagWrapFd(kind: 'sync_file' | 'dma_buf', fd: number): External;

  // --- fences and fence locks (native/addon/fence_binding.cc) ------------------
  fenceCreate(context?: bigint, seqno?: bigint | number, seqno64?: boolean, lock?: External): Handle;
  fenceCreateMany(slots: Float64Array): void;
  fencePutMany(slots: Float64Array, n: number): void;
  fenceContext(h: Handle): bigint;
  fenceSeqno(h: Handle): bigint;
  fenceFlags(h: Handle): number;
  fenceSignaled(h: Handle): boolean;
  fenceIsSignaled(h: Handle): boolean;
  /** 0 pending, 1 signalled, negative errno if signalled with an error. */
  fenceStatus(h: Handle): number;
  fenceError(h: Handle): number;
  fenceTimestamp(h: Handle): bigint | null;
  fenceDriverName(h: Handle): string;
  fenceTimelineName(h: Handle): string;
  fenceOpsDetached(h: Handle): boolean;
  fenceSignal(h: Handle): void;
  fenceSignalAt(h: Handle, timestampNs: bigint): void;
  fenceCheckAndSignal(h: Handle): boolean;
  /** Throws DmaBufError EBUSY when the fence is already signalled (nothing stored). */
  fenceSetError(h: Handle, err: number): void;
  fenceEnableSignaling(h: Handle): void;
  /** A callback token (> 0), or 0 if the fence is already signalled; throws ENOMEM. */
  fenceAddCallback(h: Handle, id: number): CallbackToken;
  fenceRemoveCallback(h: Handle, token: CallbackToken): boolean;
  /** Remaining ns (>= 1) or 0 on timeout; throws DmaBufError (the wait op's errno, EINTR on teardown). */
  fenceWaitSync(h: Handle, timeoutNs: number): number;
  /** [remaining ns or 0 on timeout, index of the signalled fence or -1]; throws like fenceWaitSync. */
  fenceWaitAnySync(hs: Handle[], timeoutNs: number): [number, number];
  fenceSetDeadline(h: Handle, deadlineNs: bigint): void;
  fenceDescribe(h: Handle): string;
  fenceIsLater(a: Handle, b: Handle): boolean;
  /** 0 (a is later), 1 (b), -1 (the later one is signalled). */
  fenceLater(a: Handle, b: Handle): number;
  fenceStub(): Handle;
  fencePrivateStub(timestampNs?: bigint): Handle;
  fenceAllocContext(count: number): bigint;
  fenceExportHandle(h: Handle): bigint;
  /** A token; throws EINVAL for an unknown handle or one of another kind (which stays importable). */
  fenceImportHandle(h: bigint, kind: number): Handle;
  fenceSame(a: Handle, b: Handle): boolean;
  fenceRefcount(h: Handle): number;
  lockCreate(): External;
  lockDispose(h: External): void;

  // --- fence containers: array, chain, unwrap (native/addon/containers_binding.cc)
  /** 0 plain fence, 1 array, 2 chain node. */
  fenceKind(h: Handle): number;
  fenceGetError(h: Handle): number;
  fenceArrayCreate(hs: Handle[], context: bigint, seqno: bigint, signalOnAny: boolean): Handle;
  /** New references to the members; null if `h` is not an array. */
  fenceArrayMembers(h: Handle): Handle[] | null;
  fenceMatchContext(h: Handle, context: bigint): boolean;
  fenceChainCreate(prev: Handle, fence: Handle, seqno: bigint): Handle;
  /** [previous point or 0, contained fence] (new references); null if `h` is not a chain node. */
  fenceChainParts(h: Handle): [Handle, Handle] | null;
  /** The previous unsignalled point (a new reference), or 0. */
  fenceChainWalk(h: Handle): Handle;
  /** The node to wait on (a new reference), or 0 once everything up to `seqno` has signalled. */
  fenceChainFindSeqno(h: Handle, seqno: bigint): Handle;
  fenceUnwrap(h: Handle): Handle[];
  fenceMerge(hs: Handle[]): Handle;
  fenceDedup(hs: Handle[]): Handle[];
  fenceDup(h: Handle): Handle;

  // --- issuers (native/addon/issuer_binding.cc) ----------------------------------
  issuerLoad(path: string, keepOps: boolean): External;
  issuerCreateNamed(driverName: string, timelineName: string): External;
  issuerInfo(h: External): NativeIssuerInfo;
  issuerState(h: External): number;
  issuerPinned(h: External): number;
  issuerCreated(h: External): number;
  issuerStats(h: External): [number, number, number, number, number, number];
  issuerCreateFence(h: External, context?: bigint, seqno?: bigint, seqno64?: boolean): Handle;
  issuerSetParam(h: External, name: string, value: bigint): void;
  issuerGetParam(h: External, name: string): bigint;
  /** Starts the unload on a thread of its own; `id` (dispatch.reserve()) is delivered when it ends. */
  issuerUnload(h: External, timeoutNs: number, id: number): External;
  /** Throws the unload's failure, if any. */
  issuerUnloadResult(job: External): void;
  issuerDispose(h: External): void;
  issuerLoadedModules(): number;

  // --- dma_resv and ww_acquire_ctx (native/addon/resv_binding.cc) ---------------
  resvCreate(): External;
  resvDispose(h: External): void;
  resvExport(h: External): bigint;
  resvImport(h: bigint): External;
  resvLock(h: External, ctx?: External): void;
  resvLockSlow(h: External, ctx: External): void;
  resvTrylock(h: External): boolean;
  resvUnlock(h: External): void;
  resvIsLocked(h: External): boolean;
  resvHeld(h: External): boolean;
  resvReserve(h: External, n: number): void;
  resvAddFence(h: External, f: Handle, usage: number): void;
  resvReplaceFences(h: External, context: bigint, f: Handle, usage: number): void;
  resvCopyFences(dst: External, src: External): void;
  /** [fences (new references), their usages]. */
  resvFences(h: External, usage: number): [Handle[], number[]];
  resvGetFences(h: External, usage: number): Handle[];
  /** A fence (a new reference), or 0 if nothing of `usage` is pending. */
  resvGetSingleton(h: External, usage: number): Handle;
  resvTestSignaled(h: External, usage: number): boolean;
  /** Remaining ns (> 0) or 0 on timeout; failures throw. */
  resvWaitSync(h: External, usage: number, timeoutNs: number): number;
  resvSetDeadline(h: External, usage: number, deadlineNs: bigint): void;
  resvDescribe(h: External): string;
  ctxCreate(): External;
  ctxDone(h: External): void;
  ctxFini(h: External): void;
  ctxAcquired(h: External): number;
  ctxStamp(h: External): bigint;
  ctxDispose(h: External): void;

  // --- sync_file and sw_sync, either backend: the handle says which ----------
  //     (native/addon/sync_file_binding.cc, sw_sync_binding.cc)
  sfCreate(f: Handle): External;
  sfFromFd(fd: number, dup: boolean): External;
  sfBackend(sf: External): 'emulated' | 'kernel';
  sfMerge(name: string, a: External, b: External): External;
  sfFd(sf: External): number;
  sfWaitFd(sf: External): number;
  sfFence(sf: External): Handle;
  sfInfo(sf: External): SyncFileInfo;
  sfIsSignaled(sf: External): boolean;
  sfSetDeadline(sf: External, ns: bigint): void;
  /** cb(revents) once readable, or cb(status, error) if uv_poll fails; returns the cancel token. */
  sfPoll(sf: External, cb: (revents: number, err?: DmaBufError) => void): External;
  sfPollCancel(token: External): void;
  sfClose(sf: External): void;
  tlCreate(backend: 'emulated' | 'kernel' | 'auto', name?: string, path?: string): External;
  tlBackend(tl: External): 'emulated' | 'kernel';
  tlCreateFence(tl: External, value: number, name: string): External;
  tlInc(tl: External, n: number): void;
  tlGetDeadline(tl: External, sf: External): bigint;
  tlClose(tl: External): void;
  tlExport(tl: External): bigint;
  tlImport(h: bigint): External;
  tlKernelAvailable(): boolean;

  // --- FdChannel (native/addon/fd_channel_binding.cc) ------------------------
  chPair(): [External, External];
  chFromFd(fd: number, dup: boolean): External;
  chConnect(path: string): External;
  chListen(path: string, mode: number, backlog: number): External;
  /** null: no connection pending */
  chAccept(listener: External): External | null;
  /** false: EAGAIN, nothing sent */
  chSend(ch: External, bytes: Uint8Array, fds: External | null): boolean;
  /** null: nothing queued; the fds are the caller's */
  chRecv(ch: External): null | { eof: true } | { eof: false; data: Uint8Array; fds: number[] };
  chPeer(ch: External): { pid: number; uid: number; gid: number };
  chFd(ch: External): number;
  /** cb(events) once ready, or cb(status, error) if uv_poll fails; returns the cancel token. */
  chWatch(ch: External, events: number, cb: (events: number, err?: DmaBufError) => void): External;
  chWatchCancel(token: External): void;
  chClose(ch: External): void;
  fdsetCreate(fds: number[]): External;
  fdsetClose(set: External): void;
  /** Closes fds the caller owns (not fs.closeSync: a worker warns about fds fs did not open). */
  fdsClose(fds: number[]): void;

  // --- heaps and dma-bufs (native/addon/heap_binding.cc, dma_buf_binding.cc) ----
  heapList(kernel: boolean, platform?: External): RawHeapInfo[];
  heapOpen(name: string, kernel: boolean, platform?: External): External;
  heapDispose(h: External): void;
  heapAlloc(h: External, len: bigint, fdFlags: number, heapFlags: bigint): External;
  bufFd(b: External): number;
  bufSize(b: External): bigint;
  bufFdinfo(b: External): [string, string][];
  bufSetName(b: External, name: string): void;
  bufSync(b: External, flags: bigint): void;
  bufMap(b: External): ArrayBuffer;
  bufUnmap(b: External, ab?: ArrayBuffer): void;
  bufClose(b: External, ab?: ArrayBuffer): void;
  bufDispose(b: External): void;
  bufBackend(b: External): 'emulated' | 'kernel';
  bufResv(b: External): External;
  bufExportSyncFile(b: External, flags: number): External;
  bufImportSyncFile(b: External, sf: External, flags: number): void;
  bufSetRevoked(b: External, revoked: boolean): void;
  bufRevoked(b: External): boolean;
  bufRevocable(b: External): boolean;
  /** A dma-buf fd (checked: EINVAL if not one, EBADF if closed) as a kernel buffer; dup: the caller keeps fd. */
  bufFromFd(fd: number, dup: boolean): External;
  bufFromMemfd(fd: number, size: bigint, expName: string, name: string, platform?: External): External;
  /** Whether poll() would block: 'read' = EPOLLIN (the writers), 'write' = EPOLLOUT (every fence). */
  bufBusy(b: External, dir: 'read' | 'write'): boolean;
  /** Whether the buffer has a kernel fd for bufPoll (else wait through its resv). */
  bufPollable(b: External): boolean;
  /** uv_poll on the buffer's fd: events 1 readable, 2 writable, 3 both; cb gets the ready UV events. */
  bufPoll(b: External, events: number, cb: (events: number, err?: DmaBufError) => void): External;
  bufPollCancel(token: External): void;

  // --- attachments (native/addon/attach_binding.cc) -----------------------------
  bufAttach(b: External, device: string, pinned: boolean, peer2peer: boolean, notifyId: number): External;
  attDetach(a: External): void;
  /** [map id, [phys, length] entries, ccShared]. */
  attMap(a: External, dir: number): [number, [bigint, number][], boolean];
  attUnmap(a: External, mapId: number): void;
  attInfo(a: External): AttachmentStats;
  attDispose(a: External): void;

  // --- memfd and udmabuf (native/addon/udmabuf_binding.cc) ----------------------
  memfdCreate(name: string, size: bigint, seals: number): External;
  memfdFd(h: External): number;
  memfdSize(h: External): bigint;
  memfdSeals(h: External): number;
  memfdAddSeals(h: External, seals: number): void;
  memfdClose(h: External): void;
  udmabufCreate(memfd: number, offset: bigint, size: bigint, flags: number): External;
  udmabufCreateList(fds: number[], offsets: bigint[], sizes: bigint[], flags: number): External;

  // --- emulated platforms, VFIO export, mem-crypt hooks (native/addon/platform_binding.cc)
  platformCreate(kernelVersion: string, arch: string, memEncrypt: boolean, cmaBytes: bigint, ramBytes: bigint): External;
  platformDispose(p: External): void;
  platformSetFault(p: External | undefined, site: string, nth: bigint, times: bigint, error: number): void;
  platformExport(p: External): bigint;
  platformImport(h: bigint): External;
  platformStats(p: External): PlatformStats;
  platformLeaked(p: External): [bigint, number][];
  vfioExport(p: External | undefined, size: bigint, openFlags: number): External;
  /** The environment's hook trampoline: `dispatch` returns 0 or a negative errno. */
  memCryptInit(dispatch: (id: number, decrypt: boolean, addr: bigint, numPages: number) => number): External;
  platformSetMemCryptHooks(p: External, env: External, id: number, decrypt: boolean, encrypt: boolean): void;
  platformClearMemCryptHooks(p: External, env: External, id: number): boolean;

  // --- benchmarks (native/addon/bench_binding.cc) -------------------------------
  /** The native scenarios' rows as JSON. */
  benchRun(filter: string, msPerRow: number): string;
  /** One parameter sweep as JSON (lib/bench_sweep.ts: SweepResult); throws when it cannot run. */
  benchSweep(name: string, msPerPoint: number): string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => unknown;

// DMABUF_ADDON_PATH names a .node to load instead (scripts/test-asan-addon.sh: the
// ASan+UBSan build of the addon under the whole test suite).
const addonPath = process.env['DMABUF_ADDON_PATH'];
export const binding = (addonPath
  ? require(path.resolve(addonPath))
  : load(path.join(__dirname, '..', '..'))) as NativeBinding;
