// `dmabuf selftest` as a library: the runner, the emitters and the types.
export { runSelftest, planRun, loadSuites, backendFor, DEFAULT_SUITES_MODULE, DEFAULT_TIMEOUT_MS } from './runner';
export type { SelftestOptions } from './runner';
export { createReporter, formatRun, formatJunit, toKernelCiJson, FORMATS, KtapReporter, TapReporter, LavaReporter } from './emitters';
export type { SelftestFormat } from './emitters';
export type * from './types';
export { suiteStatus, countResults } from './types';
