#!/bin/sh
# prebuildify calls: <shim> rebuild --target=V --devdir=D --arch=A --release|--debug
# cmake-js is our canonical build, so translate the call to it. `compile` is
# incremental: the addon does not depend on the Node version (Node-API), so the
# existing build is reused when there is one.
set -e; arch=""; cfg=Release
for a in "$@"; do case "$a" in --arch=*) arch="--arch=${a#--arch=}";; --debug) cfg=Debug;; esac; done
exec npx cmake-js compile $arch --config "$cfg"
