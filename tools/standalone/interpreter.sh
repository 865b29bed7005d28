#!/usr/bin/env bash
# A small relocatable CPython for the standalone layer, cross-compiled with zig against glibc 2.17:
#   tools/standalone/interpreter.sh x86_64|arm64
# prints the install root on its last line of stdout: ROOT/bin/python3.13, ROOT/lib/python3.13/.
#
# Made once into .cache/standalone/<arch>/ and reused while its recipe (this script, Setup.local,
# the zig and source versions) is unchanged; delete that folder to rebuild.
#
#   zig cc -target <arch>-linux-gnu.2.17   links against glibc 2.17's symbol versions, so the binary
#                                          runs on Amazon Linux 2 (glibc 2.26) and AL2023 (2.34)
#   zlib, OpenSSL                          built the same way, static (no dependence on the OS's
#                                          libssl/libz); OpenSSL looks for CA certificates where
#                                          Amazon Linux keeps them (/etc/pki/tls/cert.pem)
#   CPython                                --disable-shared: libpython is inside the executable,
#                                          which finds its standard library next to itself
#                                          (../lib/python3.13), wherever it is unpacked; the modules
#                                          of Setup.local built in, the others shared (tests only)
#   arm64                                  cross-compiled: configure cannot run its test programs,
#                                          the x86_64 interpreter (same version) is the build Python
#
# Environment (optional): STANDALONE_JOBS (make -j, default 2), STANDALONE_CACHE (default
# .cache/standalone).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ARCH=${1:?usage: interpreter.sh x86_64|arm64}
CACHE=${STANDALONE_CACHE:-$REPO/.cache/standalone}
JOBS=${STANDALONE_JOBS:-2}
ZIGLANG_VERSION=0.17.0
PYPKG=python3.13
PYMINOR=${PYPKG#python}
# Where the layer puts it on Lambda: the compiled-in prefix (a fallback only; the interpreter finds
# its library relative to its own path).
LAYER_PREFIX=/opt/lambda-logs-http/runtime

case $ARCH in
  x86_64) TARGET=x86_64-linux-gnu.2.17 HOST=x86_64-pc-linux-gnu OSSL_TARGET=linux-x86_64 MAKE_SUFFIX=x86 ;;
  arm64 | aarch64) ARCH=arm64 TARGET=aarch64-linux-gnu.2.17 HOST=aarch64-unknown-linux-gnu OSSL_TARGET=linux-aarch64 MAKE_SUFFIX=arm ;;
  *) echo "interpreter.sh: unknown architecture '$ARCH' (x86_64 or arm64)" >&2; exit 2 ;;
esac

log() { echo "interpreter.sh[$ARCH]: $*" >&2; }
die() { log "error: $*"; exit 1; }
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
OUT=$CACHE/$ARCH
ROOT=$OUT/root$LAYER_PREFIX

# STANDALONE_REUSE_ONLY (tests, the benchmark): the cache or nothing, never a download or a build
# of minutes in the middle of a test run. Exit status 3 says "not built": the caller skips.
reuse_only() {
  log "no up-to-date interpreter in $OUT (make build_standalone_$MAKE_SUFFIX builds it)"
  exit 3
}
[ -z "${STANDALONE_REUSE_ONLY:-}" ] || [ -f "$OUT/recipe" ] || reuse_only

# The tarballs name the recipe; sources.sh downloads one only when it is missing (never when reusing).
SOURCES=$(STANDALONE_OFFLINE=${STANDALONE_REUSE_ONLY:-} bash "$HERE/sources.sh" "$CACHE/src" "$PYPKG" openssl=3.5. zlib) \
  || { [ -z "${STANDALONE_REUSE_ONLY:-}" ] || reuse_only; die "no sources"; }
PY_TAR=$(sed -n 1p <<<"$SOURCES")
OSSL_TAR=$(sed -n 2p <<<"$SOURCES")
ZLIB_TAR=$(sed -n 3p <<<"$SOURCES")

# What CPython's _ssl and _hashlib use stays (TLS 1.2/1.3, PSK, scrypt, the default provider);
# the command-line tools, tests, docs, engines, the legacy provider and ciphers no TLS endpoint
# negotiates today are left out: a smaller binary and a shorter build.
OSSL_OPTIONS="no-shared no-module no-dso no-engine no-legacy no-apps no-tests no-docs no-ui-console
  no-comp no-zlib no-ssl3 no-dtls no-srp no-srtp no-sctp no-quic no-http no-ocsp no-ct no-cms no-ts
  no-idea no-camellia no-seed no-aria no-sm2 no-sm3 no-sm4 no-whirlpool no-md4 no-mdc2 no-rc2 no-rc4
  no-bf no-cast no-gost no-ec2m no-siphash no-afalgeng no-devcryptoeng no-padlockeng no-capieng"
# Two cache keys: zlib + OpenSSL (rarely change, half the build) and the whole interpreter.
deps_recipe=$(echo "deps-1 $ZIGLANG_VERSION ${OSSL_TAR##*/} ${ZLIB_TAR##*/} $TARGET $OSSL_OPTIONS" | sha256sum | cut -d' ' -f1)
recipe=$(
  {
    sha256sum "$HERE/interpreter.sh" "$HERE/Setup.local" | cut -d' ' -f1
    echo "$ZIGLANG_VERSION ${PY_TAR##*/} $deps_recipe"
  } | sha256sum | cut -d' ' -f1
)
if [ -f "$OUT/recipe" ] && [ "$(cat "$OUT/recipe")" = "$recipe" ] && [ -x "$ROOT/bin/$PYPKG" ]; then
  log "reusing $ROOT ($(cat "$OUT/built"))"
  echo "$ROOT"
  exit 0
fi
[ -z "${STANDALONE_REUSE_ONLY:-}" ] || reuse_only

# --- the toolchain: zig from the ziglang wheel (PyPI), into the cache --------------------------
ZIGDIR=$CACHE/ziglang-$ZIGLANG_VERSION
ZIG=$ZIGDIR/ziglang/zig
if [ ! -x "$ZIG" ]; then
  log "installing ziglang==$ZIGLANG_VERSION (pip) into $ZIGDIR"
  pip=${STANDALONE_PIP:-$(command -v pip3 || command -v pip || true)}
  [ -n "$pip" ] || die "no pip to install ziglang with (set STANDALONE_PIP)"
  rm -rf "$ZIGDIR.tmp"
  "$pip" install -q --disable-pip-version-check --no-deps --target "$ZIGDIR.tmp" "ziglang==$ZIGLANG_VERSION" >&2
  mv "$ZIGDIR.tmp" "$ZIGDIR"
fi
# zig keeps its compiled libc stubs here (a few seconds per target, once).
export ZIG_GLOBAL_CACHE_DIR=$CACHE/zig-cache ZIG_LOCAL_CACHE_DIR=$CACHE/zig-cache

# arm64 needs a build Python of the same version: the x86_64 one (built first, or reused).
BUILD_PY=
if [ "$ARCH" = arm64 ]; then
  BUILD_PY=$(bash "$HERE/interpreter.sh" x86_64 | tail -n 1)/bin/$PYPKG
fi

started=$(date +%s)
reuse_deps=
if [ -f "$OUT/deps.recipe" ] && [ "$(cat "$OUT/deps.recipe")" = "$deps_recipe" ] \
  && [ -f "$OUT/deps/lib/libssl.a" ] && [ -f "$OUT/deps/lib/libz.a" ]; then
  reuse_deps=1
  mv "$OUT/deps" "$CACHE/.deps-$ARCH"
fi
rm -rf "$OUT"
mkdir -p "$OUT/bin"
if [ -n "$reuse_deps" ]; then
  mv "$CACHE/.deps-$ARCH" "$OUT/deps"
  echo "$deps_recipe" >"$OUT/deps.recipe"
else
  mkdir -p "$OUT/deps"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/standalone-$ARCH.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Wrappers: configure scripts want one word per tool. No sanitizers (zig cc enables UBSan traps
# unless told otherwise). zig cc refuses __DATE__/__TIME__ (CPython's build info) unless told:
# SOURCE_DATE_EPOCH makes them a fixed date, so the binary is the same on every rebuild.
for tool in cc c++; do
  printf '#!/bin/sh\nexec "%s" %s -target %s -fno-sanitize=all -Wno-date-time "$@"\n' "$ZIG" "$tool" "$TARGET" >"$OUT/bin/$tool"
done
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}
for tool in ar ranlib; do
  printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$ZIG" "$tool" >"$OUT/bin/$tool"
done
chmod +x "$OUT/bin/"*
export CC=$OUT/bin/cc CXX=$OUT/bin/c++ AR=$OUT/bin/ar RANLIB=$OUT/bin/ranlib
DEPS=$OUT/deps
# pkg-config sees only what is built here, never the build machine's own -dev packages.
export PKG_CONFIG_LIBDIR=$DEPS/lib/pkgconfig PKG_CONFIG_PATH=
timing=()
mark() { timing+=("$1 $(($(date +%s) - $2))s"); }

# --- zlib -----------------------------------------------------------------------------------------
if [ -z "$reuse_deps" ]; then
t=$(date +%s)
tar -xzf "$ZLIB_TAR" -C "$work"
zsrc=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'zlib*' | head -n 1)
(cd "$zsrc" && CFLAGS="-O2 -fPIC" CHOST=$HOST ./configure --static --prefix="$DEPS" >"$work/zlib.log" 2>&1 \
  && make -j"$JOBS" libz.a >>"$work/zlib.log" 2>&1 && make install >>"$work/zlib.log" 2>&1) \
  || { tail -n 30 "$work/zlib.log" >&2; die "zlib failed"; }
mark zlib "$t"

# --- OpenSSL (static, libraries only; options above) ----------------------------------------------
t=$(date +%s)
tar -xzf "$OSSL_TAR" -C "$work"
osrc=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'openssl-*' | head -n 1)
# shellcheck disable=SC2086 # OSSL_OPTIONS is a list of words
(cd "$osrc" && ./Configure "$OSSL_TARGET" --prefix="$DEPS" --libdir=lib --openssldir=/etc/pki/tls \
  $OSSL_OPTIONS -O2 >"$work/openssl.log" 2>&1 \
  && make -j"$JOBS" build_libs >>"$work/openssl.log" 2>&1 \
  && make install_dev >>"$work/openssl.log" 2>&1) \
  || { tail -n 40 "$work/openssl.log" >&2; die "OpenSSL failed"; }
mark openssl "$t"
echo "$deps_recipe" >"$OUT/deps.recipe"
fi

# --- CPython --------------------------------------------------------------------------------------
t=$(date +%s)
tar -xJf "$PY_TAR" -C "$work"
psrc=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -n 1)
cp "$HERE/Setup.local" "$psrc/Modules/Setup.local"
cross=()
if [ "$ARCH" = arm64 ]; then
  # No test programs can run: answer configure's run-time questions for Linux on aarch64.
  printf 'ac_cv_file__dev_ptmx=yes\nac_cv_file__dev_ptc=no\nac_cv_buggy_getaddrinfo=no\n' >"$work/config.site"
  export CONFIG_SITE=$work/config.site
  cross=(--host="$HOST" --build=x86_64-pc-linux-gnu --with-build-python="$BUILD_PY")
fi
# Modules nothing here uses and that need libraries the target has no headers for anyway, or
# that only add build time: not built at all.
skip=(_ctypes _curses _curses_panel _dbm _gdbm _tkinter readline _sqlite3 _bz2 _lzma _uuid _decimal
  _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr _codecs_tw _multibytecodec
  _interpreters _interpchannels _interpqueues xxsubtype)
for m in "${skip[@]}"; do export "py_cv_module_$m=n/a"; done
(cd "$psrc" && ./configure -q --prefix="$LAYER_PREFIX" "${cross[@]}" \
  --disable-shared --disable-test-modules --without-ensurepip --without-doc-strings \
  --with-openssl="$DEPS" --with-openssl-rpath=no \
  CFLAGS="-O2" CPPFLAGS="-I$DEPS/include" LDFLAGS="-L$DEPS/lib -s" \
  ZLIB_CFLAGS="-I$DEPS/include" ZLIB_LIBS="-L$DEPS/lib -lz" \
  LIBS="-lpthread -ldl" >"$work/configure.log" 2>&1) \
  || { tail -n 40 "$work/configure.log" >&2; die "CPython configure failed"; }
(cd "$psrc" && make -j"$JOBS" >"$work/make.log" 2>&1) || { tail -n 60 "$work/make.log" >&2; die "CPython make failed"; }
grep -A 12 'necessary bits to build these optional modules were not found\|Failed to build these modules\|Following modules built successfully but were removed' \
  "$work/make.log" >&2 || true
mark "cpython make" "$t"
t=$(date +%s)
(cd "$psrc" && make altinstall DESTDIR="$OUT/root" >"$work/install.log" 2>&1) \
  || { tail -n 40 "$work/install.log" >&2; die "CPython install failed"; }
mark "cpython install" "$t"
cp "$work/configure.log" "$work/make.log" "$OUT/" 2>/dev/null || true

[ -x "$ROOT/bin/$PYPKG" ] || die "no $ROOT/bin/$PYPKG after install"
echo "$PYMINOR $(basename "$PY_TAR") $(basename "$OSSL_TAR") $(basename "$ZLIB_TAR") zig $ZIGLANG_VERSION; $TARGET; built in $(($(date +%s) - started)) s (${timing[*]})" >"$OUT/built"
echo "$recipe" >"$OUT/recipe"
log "built $ROOT: $(cat "$OUT/built")"
echo "$ROOT"
