// The raw addon, typed. Only the classes in this package call it; they validate
// every argument first, so the native side receives flat, checked values.
import * as path from 'node:path';

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
  envInit(dispatch: (ids: number[]) => void, pending: Uint8Array, errorClass: Function): void;
  envDrain(): void;
  envKeepAlive(on: boolean): void;
  warnCount(): number;
  rcuBarrier(): void;
  deferredPending(): number;

  liveFences(): number;
  diagFailCallbackAlloc(nth: number, times: number): void;

  fenceCreate(context?: bigint, seqno?: bigint | number, seqno64?: boolean, lock?: External): Handle;
  fenceCreateMany(slots: Float64Array): void;
  fencePutMany(slots: Float64Array, n: number): void;
  fenceContext(h: Handle): bigint;
  fenceSeqno(h: Handle): bigint;
  fenceFlags(h: Handle): number;
  fenceSignaled(h: Handle): boolean;
  fenceIsSignaled(h: Handle): boolean;
  fenceStatus(h: Handle): number;
  fenceError(h: Handle): number;
  fenceTimestamp(h: Handle): bigint | null;
  fenceDriverName(h: Handle): string;
  fenceTimelineName(h: Handle): string;
  fenceOpsDetached(h: Handle): boolean;
  fenceSignal(h: Handle): void;
  fenceSignalAt(h: Handle, timestampNs: bigint): void;
  fenceCheckAndSignal(h: Handle): boolean;
  fenceSetError(h: Handle, err: number): number;
  fenceEnableSignaling(h: Handle): void;
  fenceAddCallback(h: Handle, id: number): CallbackToken;
  fenceRemoveCallback(h: Handle, token: CallbackToken): boolean;
  fenceWaitSync(h: Handle, timeoutNs: number): number;
  fenceWaitAnySync(hs: Handle[], timeoutNs: number): [number, number];
  fenceSetDeadline(h: Handle, deadlineNs: bigint): void;
  fenceDescribe(h: Handle): string;
  fenceIsLater(a: Handle, b: Handle): boolean;
  fenceLater(a: Handle, b: Handle): number;
  fenceStub(): Handle;
  fencePrivateStub(timestampNs?: bigint): Handle;
  fenceAllocContext(count: number): bigint;
  fenceExportHandle(h: Handle): bigint;
  fenceImportHandle(h: bigint, kind: number): Handle | 0 | -1;
  fenceSame(a: Handle, b: Handle): boolean;
  fenceRefcount(h: Handle): number;
  lockCreate(): External;
  lockDispose(h: External): void;

  issuerLoad(path: string, keepOps: boolean): External;
  issuerCreateNamed(driverName: string, timelineName: string): External;
  issuerInfo(h: External): NativeIssuerInfo;
  issuerState(h: External): number;
  issuerPinned(h: External): number;
  issuerCreated(h: External): number;
  issuerStats(h: External): [number, number, number, number, number, number];
  issuerCreateFence(h: External, context: bigint | undefined, seqno: bigint | undefined, seqno64: boolean): Handle;
  issuerSetParam(h: External, name: string, value: bigint): void;
  issuerGetParam(h: External, name: string): bigint;
  issuerUnload(h: External, timeoutNs: number, id: number): External;
  issuerUnloadResult(job: External): void;
  issuerDispose(h: External): void;
  issuerLoadedModules(): number;

  benchRun(filter: string, msPerRow: number): string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => unknown;

// DMABUF_ADDON_PATH names a .node to load instead (scripts/test-asan-addon.sh: the
// ASan+UBSan build of the addon under the whole test suite).
const addonPath = process.env['DMABUF_ADDON_PATH'];
export const binding = (addonPath
  ? require(path.resolve(addonPath))
  : load(path.join(__dirname, '..'))) as NativeBinding;
