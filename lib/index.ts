// dmabuf: Linux's dma-buf subsystem in userspace C++, for Node.js.
// Disposable and Symbol.dispose/asyncDispose come from TypeScript's own lib, so a
// consumer's tsconfig needs neither @types/node nor "lib": ["esnext"] for them.
/// <reference lib="esnext.disposable" preserve="true" />
export { DmaBufError, isDmaBufError, errnoName, errnoNumber, DMABUF_ERROR_CODES } from './errors';
export type { DmaBufErrorCode } from './errors';
export { Fence, FenceLock, FenceCallback } from './fence';
export type { FenceInit, FenceFlags, WaitOptions } from './fence';
export { Issuer } from './issuer';
export type {
  ExampleIssuer,
  IssuerFenceInit,
  IssuerKind,
  IssuerLoadOptions,
  IssuerNames,
  IssuerState,
  IssuerUnloadStats,
  UnloadOptions,
} from './issuer';
export { runBench, runBenchAsync } from './bench';
export type { BenchRow, BenchOptions, BenchProgress, BenchGroup } from './bench';
export { diagnostics } from './diagnostics';
export { probe } from './probe';
export type { ProbeReport, ProbeCheck } from './probe';
export { FenceArray, FenceChain, unwrap, merge, dedup } from './containers';
export type { FenceArrayInit } from './containers';
export { Resv, AcquireContext } from './resv';
export type { ResvUsage } from './resv';
export { SyncFile, SwSyncTimeline } from './sync_file';
export { FdChannel, FdChannelServer } from './fd_channel';
export type { FdAttachment, FdMessage, FdChannelPeer } from './fd_channel';
export type { SyncFileInfo, SyncFenceInfo, SyncBackend, SwSyncTimelineOptions } from './sync_file';
export { createMemfd, Memfd, udmabufCreate, udmabufCreateList, udmabufAvailable, UDMABUF_PATH, UDMABUF_FLAGS_CLOEXEC } from './udmabuf';
export type { MemfdSeal, MemfdOptions, UdmabufOptions, UdmabufRange } from './udmabuf';
export { listHeaps, openHeap, Heap, DEFAULT_FD_FLAGS } from './heap';
export type { HeapInfo, HeapBackend, HeapKind, AllocOptions } from './heap';
export { DmaBuf } from './dma_buf';
export type { CpuAccessDir, FromFdOptions, PollDir, SyncFileDir } from './dma_buf';
export { Attachment } from './attachment';
export type { AttachOptions, AttachmentStats, DmaDirection, SgEntry, SgTable } from './attachment';
export { createPlatform, exportVfioBuffer, Platform } from './platform';
export type {
  FaultOptions,
  LeakedBlock,
  MemCryptHook,
  MemCryptHooks,
  PlatformOptions,
  PlatformStats,
  VfioExportOptions,
} from './platform';
