// The small TAP-like runner the real-kernel JS tests share: one "ok", "not ok"
// or "skip" line per case, a count, exit status 1 when a case failed.
export function suite() {
  const cases = [];
  return {
    /** Registers a case; `needs` is whatever the run's `skipWhy(needs)` understands. */
    test(name, fn, needs = []) {
      cases.push({ name, fn, needs });
    },
    /**
     * Runs the cases in order. `why` skips them all (with that reason); otherwise
     * `skipWhy(needs)` may skip one case. A case may skip itself by returning a
     * string, or add a note to its "ok" line by returning 'note: ...'.
     */
    async run({ why = null, skipWhy = () => null } = {}) {
      let failed = 0;
      let skipped = 0;
      for (const c of cases) {
        const skip = why ?? skipWhy(c.needs);
        if (skip) {
          console.log(`skip - ${c.name} # ${skip}`);
          skipped++;
          continue;
        }
        try {
          const r = await c.fn();
          if (typeof r === 'string' && !r.startsWith('note: ')) {
            console.log(`skip - ${c.name} # ${r}`);
            skipped++;
          } else console.log(`ok - ${c.name}${r ? ` # ${r.slice(6)}` : ''}`);
        } catch (e) {
          failed++;
          console.log(`not ok - ${c.name}\n  ${String(e?.stack ?? e).split('\n').join('\n  ')}`);
        }
      }
      const passed = cases.length - failed - skipped;
      console.log(`# ${passed} passed, ${skipped} skipped, ${failed} failed (of ${cases.length})`);
      process.exit(failed ? 1 : 0);
    },
  };
}
