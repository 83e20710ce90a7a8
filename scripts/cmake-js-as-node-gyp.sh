#!/bin/sh
# prebuildify calls: <shim> rebuild --target=V --devdir=D --arch=A --release|--debug
# cmake-js is our canonical build, so translate the call to it.
set -e; arch=""; cfg=Release
for a in "$@"; do case "$a" in --arch=*) arch="--arch=${a#--arch=}";; --debug) cfg=Debug;; esac; done
exec npx cmake-js rebuild $arch --config "$cfg"
