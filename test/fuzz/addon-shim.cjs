// Loaded with `node -r` into every fuzz child (and, through execArgv, into its
// workers). When DMABUF_ADDON_PATH names an addon (e.g. an ASan build) and the
// package's binding.js does not read that variable itself yet, make the
// package's `require('node-gyp-build')(dir)` load that file instead. When the
// package supports the variable, this does nothing.
'use strict';
const Module = require('node:module');
const fs = require('node:fs');
const path = require('node:path');

const addon = process.env.DMABUF_ADDON_PATH;
const pkg = process.env.DMABUF_FUZZ_PKG; // the package's main file (dist/index.js)
if (addon && pkg) {
  let native = false;
  for (const rel of ['internal/binding.js', 'binding.js']) {
    try {
      native ||= fs.readFileSync(path.join(path.dirname(pkg), rel), 'utf8').includes('DMABUF_ADDON_PATH');
    } catch {
      // not at this place in this version of the package
    }
  }
  if (!native) {
    const file = path.resolve(addon);
    const origLoad = Module._load;
    Module._load = function load(request, parent, isMain) {
      if (request === 'node-gyp-build' && parent && parent.filename && parent.filename.endsWith(`${path.sep}binding.js`)) {
        return () => origLoad.call(this, file, parent, false);
      }
      return origLoad.call(this, request, parent, isMain);
    };
  }
}
