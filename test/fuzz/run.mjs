#!/usr/bin/env node
// The fuzz driver.
//   node test/fuzz/run.mjs --time 120 --jobs 2            fresh seeds for 120 s
//   node test/fuzz/run.mjs --seed 12345                   one seed, with its trace
//   node test/fuzz/run.mjs --replay [--repeat 3]          every seed in test/fuzz/corpus/
// Options: --ops N (per run, default 300), --timeout MS (per run, default 10000),
//   --without tag,tag (forge, wrongrecv, dup, waitany, sparse, hostile, reenter, worker, exit, gc, issuer, buffer,
//   block, lockexit), --addon PATH (sets DMABUF_ADDON_PATH for the children),
//   --pkg PATH (default dist/index.js), --runs N (stop after N runs), --no-save,
//   --save NOTE (with --seed: keep that failing seed in the corpus, NOTE saying what it triggers).
// The environment passes through to every child untouched (LD_PRELOAD,
// ASAN_OPTIONS, DMABUF_ADDON_PATH): run under an ASan addon with e.g.
//   LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
//     node test/fuzz/run.mjs --addon build-asan/Release/dmabuf.node --time 300
// Exit status: 0 when every run passed, 1 on any failure, 2 when the package
// cannot be loaded.
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import { CORPUS_DIR, childrenCpuSeconds, readCorpus, runSeed, writeCorpus } from './harness.mjs';

const argv = process.argv.slice(2);
const has = (n) => argv.includes(`--${n}`);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};
if (has('help') || has('h')) {
  const src = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n');
  console.log(src.slice(1, 16).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const timeS = Number(opt('time', '60'));
const jobs = Math.max(1, Number(opt('jobs', '1')));
const ops = Number(opt('ops', '300'));
const timeoutMs = Number(opt('timeout', '10000'));
const maxRuns = opt('runs') ? Number(opt('runs')) : Infinity;
const without = (opt('without', '') || '').split(',').filter(Boolean);
const common = { ops, timeoutMs, without, addon: opt('addon'), pkg: opt('pkg') };
const MAX_CORPUS = 15;

function show(r, verbose) {
  const head = r.ok ? `ok    seed ${r.seed} (${r.ms} ms)` : `FAIL  seed ${r.seed} (${r.ms} ms) ${r.kind}: ${r.reason}`;
  console.log(head);
  if (!r.ok && verbose) {
    console.log(`      key: ${r.key}`);
    if (r.without?.length) console.log(`      without: ${r.without.join(',')}`);
    console.log(`      last ops:\n${r.lastOps.map((l) => `        ${l}`).join('\n')}`);
    if (r.finding?.stack) console.log(`      stack:\n${r.finding.stack.split('\n').map((l) => `        ${l}`).join('\n')}`);
    if (r.stderrTail) console.log(`      stderr:\n${r.stderrTail.split('\n').slice(-15).map((l) => `        ${l}`).join('\n')}`);
  }
}

async function replay() {
  const corpus = readCorpus();
  const repeat = Number(opt('repeat', '1'));
  if (!corpus.length) {
    console.log(`no seeds in ${CORPUS_DIR}`);
    return 0;
  }
  let failed = 0;
  const cpu0 = childrenCpuSeconds();
  for (const e of corpus) {
    let bad = null;
    for (let i = 0; i < Math.max(repeat, e.repeat ?? 1) && !bad; i++) {
      const r = await runSeed(e.seed, { ...common, ops: e.ops ?? ops, without: e.without ?? [] });
      if (r.infra) {
        console.error(`cannot load the package: ${r.reason}`);
        return 2;
      }
      if (!r.ok) bad = r;
    }
    if (bad) {
      failed++;
      console.log(`FAIL  ${e.file}: ${bad.kind}: ${bad.reason}${bad.key === e.key ? '' : `\n      (recorded: ${e.key})`}`);
      if (has('verbose')) show(bad, true);
    } else {
      console.log(`pass  ${e.file} (recorded: ${e.key})`);
    }
  }
  console.log(`\n${corpus.length} seeds, ${failed} failing, CPU ${(childrenCpuSeconds() - cpu0).toFixed(1)} s`);
  return failed ? 1 : 0;
}

async function fuzz() {
  if (opt('seed') !== undefined) {
    const r = await runSeed(Number(opt('seed')), common);
    show(r, true);
    // --save "what it triggers": keep this seed in the corpus.
    if (!r.ok && !r.infra && opt('save') !== undefined) console.log(`      saved ${writeCorpus(r, { ops, triggers: opt('save') })}`);
    if (r.infra) return 2;
    return r.ok ? 0 : 1;
  }
  const deadline = Date.now() + timeS * 1000;
  const cpu0 = childrenCpuSeconds();
  const t0 = Date.now();
  let runs = 0;
  let infraStreak = 0;
  const failures = new Map(); // key -> results
  const corpus = readCorpus();
  const knownKeys = new Set(corpus.map((e) => e.key));
  let saved = 0;
  const worker = async () => {
    while (Date.now() < deadline && runs < maxRuns) {
      runs++;
      const seed = randomInt(2 ** 32 - 1);
      const r = await runSeed(seed, common);
      if (r.infra) {
        runs--;
        if (++infraStreak > 5) throw new Error(`cannot load the package: ${r.reason}`);
        console.error(`package not loadable (being rebuilt?), retrying in 30 s: ${r.reason}`);
        await new Promise((res) => setTimeout(res, 30000));
        continue;
      }
      infraStreak = 0;
      if (r.ok) {
        if (has('verbose')) show(r, false);
        continue;
      }
      const first = !failures.has(r.key);
      if (first) failures.set(r.key, []);
      failures.get(r.key).push(r);
      show(r, first);
      if (first && !knownKeys.has(r.key) && !has('no-save') && corpus.length + saved < MAX_CORPUS) {
        knownKeys.add(r.key);
        saved++;
        console.log(`      saved ${writeCorpus(r, { ops })}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: jobs }, worker));
  } catch (e) {
    console.error(String(e.message ?? e));
    return 2;
  }
  const cpu = childrenCpuSeconds() - cpu0;
  const nFail = [...failures.values()].reduce((n, l) => n + l.length, 0);
  console.log(`\n=== fuzz summary: ${runs} runs in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${jobs} job(s), CPU ${cpu.toFixed(1)} s, ${nFail} failing (${failures.size} distinct)`);
  for (const [key, list] of failures) {
    console.log(`  ${list.length}x ${key}\n     seeds: ${list.slice(0, 8).map((r) => r.seed).join(' ')}`);
  }
  return nFail ? 1 : 0;
}

const code = has('replay') ? await replay() : await fuzz();
process.exit(code);
