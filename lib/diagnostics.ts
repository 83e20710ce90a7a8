// Process-wide diagnostics, mostly for tests and benchmarks.
import { binding } from './internal/binding';
import { flushPuts } from './internal/handles';

export const diagnostics = {
  /** Kernel-style warnings (WARN()) reported so far by the native core. */
  warnCount(): number {
    return binding.warnCount();
  },
  /** Waits until every deferred (RCU) free queued so far has run. Blocks briefly. */
  rcuBarrier(): void {
    flushPuts();
    binding.rcuBarrier();
  },
  /** Issuer modules loaded and not yet unloaded, process-wide (every worker sees the same). */
  loadedIssuerModules(): number {
    return binding.issuerLoadedModules();
  },
  /** Deferred frees handed to the reclaimer that have not run yet. */
  deferredPending(): number {
    return binding.deferredPending();
  },
};
