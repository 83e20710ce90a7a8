// The kernel's `dma-buf-fence` suite (st-dma-fence.c, 7.1), all 12 cases. The
// cases live in lib/selftest/suites/fence.ts, shipped as `dmabuf selftest
// --suite dma-buf-fence`; here they run from the TypeScript sources.
import { fenceSuite } from '../lib/selftest/suites/fence';
import { describeSuite } from './selftest-cases';

describeSuite(fenceSuite);
