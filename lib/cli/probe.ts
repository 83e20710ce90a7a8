// `dmabuf probe`: what this node's kernel offers for dma-buf work.
import { parseArgs } from 'node:util';
import { formatProbe, probe } from '../probe';

const usage = `usage: dmabuf probe [--json]

  Tries each dma-buf capability of this node and prints one row per check:
  kernel release and arch; each heap under /dev/dma_heap (open and a one-page
  alloc: ok, EACCES or ENOENT, with mode and owner); /dev/udmabuf; debugfs and
  sw_sync; the sync_file ioctls (merge, info, set/get deadline); dma-buf
  export/import sync_file; DRM render nodes; and the emulation.
  --json   the same as JSON
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`dmabuf probe: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const r = probe();
  process.stdout.write(values.json ? JSON.stringify(r, null, 2) + '\n' : formatProbe(r));
  return 0;
}
