// The suites `dmabuf selftest` ships, in the order they run.
import type { SelftestSuite } from '../types';
import { fenceSuite } from './fence';
import { fenceChainSuite } from './fence_chain';
import { fenceUnwrapSuite } from './fence_unwrap';
import { resvSuite } from './resv';
import { syncSuite } from './sync';
import { heapSuite } from './heap';
import { udmabufSuite } from './udmabuf';
import { implicitSyncSuite } from './implicit_sync';
import { issuersSuite } from './issuers';

export const suites: readonly SelftestSuite[] = [
  fenceSuite,
  fenceChainSuite,
  fenceUnwrapSuite,
  resvSuite,
  syncSuite,
  heapSuite,
  udmabufSuite,
  implicitSyncSuite,
  issuersSuite,
];
