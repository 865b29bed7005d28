#!/usr/bin/env bash
# Build the standalone flavour of the layer, with its own CPython, for one architecture:
#
#   bash build-standalone.sh x86_64|arm64   -> dist/lambda-logs-http-standalone-<arch>.zip,
#                                              unpacked into dist/standalone-<arch>/layer/
#
# The same extension as build.sh's layer, for the runtimes that have no Python (Node.js, Java,
# .NET, Ruby, provided.al2/al2023): the launcher prefers the function's own /var/lang/bin/python3
# (Python runtimes, 3.9+) and otherwise runs the bundled interpreter in
# /opt/lambda-logs-http/runtime/ (never on the function's PATH, LD_LIBRARY_PATH or PYTHONPATH).
#
# The interpreter is built once by tools/standalone/interpreter.sh into .cache/standalone/<arch>/
# (CPython and OpenSSL from Debian's source packages, zig cc against glibc 2.17; the first build
# takes minutes, see that script) and reused; this script then takes seconds.
#
# Environment (all optional): OUT_DIR (default dist/), PYTHON (runs build.sh's steps, default
# python3), STANDALONE_CACHE, STANDALONE_JOBS (see tools/standalone/interpreter.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARCH=${1:?usage: build-standalone.sh x86_64|arm64}
case $ARCH in x86_64) ;; arm64 | aarch64) ARCH=arm64 ;; *) echo "build-standalone.sh: unknown architecture $ARCH" >&2; exit 2 ;; esac
OUT_DIR=${OUT_DIR:-$ROOT/dist}
PYTHON=${PYTHON:-python3}
TOOLS=$ROOT/tools/standalone

interp=$(bash "$TOOLS/interpreter.sh" "$ARCH" | tail -n 1)
# The stdlib's bytecode is portable: the x86_64 interpreter (same version) compiles it for both.
compiler=$(bash "$TOOLS/interpreter.sh" x86_64 | tail -n 1)/bin/python3.13

stage=$(mktemp -d "${TMPDIR:-/tmp}/standalone-layer.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# The plain layer: launcher, package, bytecode for every Lambda Python found (so the function's
# own Python 3.9-3.14 starts from bytecode too), plus 3.13's from the bundled interpreter.
OUT_DIR=$stage/plain PYTHON=$PYTHON bash "$ROOT/build.sh" >"$stage/build.log" \
  || { cat "$stage/build.log" >&2; exit 1; }

# Licenses of what the interpreter is made of, from the same source tarballs.
mkdir -p "$stage/licenses"
src=${STANDALONE_CACHE:-$ROOT/.cache/standalone}/src
tar -xJOf "$(ls "$src"/python3.13_*.orig.tar.xz | sort -V | tail -n 1)" --wildcards 'Python-*/LICENSE' >"$stage/licenses/CPython-LICENSE.txt"
tar -xzOf "$(ls "$src"/openssl_3.5.*.orig.tar.gz | sort -V | tail -n 1)" --wildcards 'openssl-*/LICENSE.txt' >"$stage/licenses/OpenSSL-LICENSE.txt"
tar -xzOf "$(ls "$src"/zlib_*.orig.tar.gz | sort -V | tail -n 1)" --wildcards '*/LICENSE' >"$stage/licenses/zlib-LICENSE.txt" 2>/dev/null \
  || tar -xzOf "$(ls "$src"/zlib_*.orig.tar.gz | sort -V | tail -n 1)" --wildcards '*/README' | sed -n '/^Copyright notice/,$p' >"$stage/licenses/zlib-LICENSE.txt"
cp "$interp/../../../../built" "$stage/licenses/BUILD-INFO.txt" 2>/dev/null || true

mkdir -p "$OUT_DIR"
"$PYTHON" -I "$TOOLS/assemble.py" "$stage/plain/layer" "$interp" "$TOOLS/stdlib.txt" "$stage/licenses" \
  "$OUT_DIR/lambda-logs-http-standalone-$ARCH.zip" "$OUT_DIR/standalone-$ARCH/layer" "$compiler"
echo "arch      $ARCH"
echo "python    $(cat "$interp/../../../../built" 2>/dev/null || echo "$interp")"
