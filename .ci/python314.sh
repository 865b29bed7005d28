#!/usr/bin/env bash
# A CPython 3.14 for the tests and for the layer's 3.14 bytecode: .cache/python3.14/bin/python3.14.
# Made once, reused while it still imports the modules the tests need (delete the folder to redo).
#
# No Python 3.14 is installed on these machines, so it comes from Debian's archive, through the
# machine's own apt source (its URI and keyring, read from /etc/apt at run time) pointed at a suite
# that has python3.14 (sid), with private apt lists under .cache/apt-python3.14/ (the machine's apt setup and
# state are left alone):
#   source  `apt-get source --download-only python3.14` (newest version the archive serves), its
#           .orig.tar.xz is the upstream tarball: ./configure (no PGO, no LTO), make -j2, install.
#           Adds the -dev packages it builds against (ssl, zlib, ffi, sqlite3, bz2, lzma...).
#   binary  when the archive lists the source package but does not serve its files (seen here:
#           404 for every python3.14 source version, while its .debs download): Debian's own
#           python3.14 .debs and the shared libraries they link, unpacked into the prefix, with the
#           interpreter's ELF loader and rpath pointed at the unpacked glibc (patchelf), since
#           they are built for a newer glibc than this machine's.
# auto (the default) tries source, then binary.
#
# Environment (all optional):
#   PY314_FROM     auto | source | binary
#   PY314_PACKAGE  Debian source package (default python3.14; e.g. python3.13 to check the recipe)
#   PY314_SUITES   suites to look in (default: sid)
#   PY314_PREFIX   install prefix (default: .cache/$PY314_PACKAGE)
#   PY314_JOBS     make -j (default 2)
# Prints the interpreter's path on its last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PKG=${PY314_PACKAGE:-python3.14}
MINOR=${PKG#python}
FROM=${PY314_FROM:-auto}
SUITES=${PY314_SUITES:-sid}
PREFIX=${PY314_PREFIX:-$REPO/.cache/$PKG}
JOBS=${PY314_JOBS:-2}
WORK=$REPO/.cache/apt-$PKG
PY=$PREFIX/bin/$PKG
# What the package and its tests import that an interpreter may be built without.
MODULES="ssl, zlib, hashlib, _socket, select, sqlite3, ctypes, bz2, lzma, json, venv"

log() { echo "python314.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usable() {
  [ -x "$PY" ] && "$PY" -I -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$MINOR'.split('.'))); import $MODULES" \
    >/dev/null 2>&1
}

if usable; then
  log "reusing $PY ($("$PY" -I -c 'import sys; print(sys.version.split()[0])'))"
  echo "$PY"
  exit 0
fi
case $FROM in auto | source | binary) ;; *) die "PY314_FROM=$FROM: expected auto, source or binary" ;; esac
started=$(date +%s)

# --- the machine's Debian source, pointed at $SUITES ---------------------------------------------
# URI and Signed-By of the entry for this release's own suite, from deb822 files or sources.list.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
entry=$(
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v cn="$codename" 'BEGIN { RS = ""; FS = "\n" }
      {
        types = uris = suites = signed = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line)
          if (key == "types") types = line; else if (key == "uris") uris = line
          else if (key == "suites") suites = line; else if (key == "signed-by") signed = line
          else if (key == "enabled") enabled = tolower(line)
        }
        if (enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " cn " ")) {
          split(uris, u, /[ \t]+/); print u[1] "\t" signed; exit
        }
      }' "$f"
  done | head -n 1
)
if [ -z "$entry" ] && [ -f /etc/apt/sources.list ]; then
  # deb [signed-by=KEYRING ...] URI SUITE COMPONENTS...
  entry=$(awk -v cn="$codename" '$1 == "deb" {
      signed = ""; i = 2
      if ($2 ~ /^\[/) {
        for (; i <= NF; i++) {
          opt = $i; gsub(/[][]/, "", opt)
          if (opt ~ /^signed-by=/) { sub(/^signed-by=/, "", opt); signed = opt }
          if ($i ~ /\]$/) { i++; break }
        }
      }
      if ($(i + 1) == cn) { print $i "\t" signed; exit }
    }' /etc/apt/sources.list)
fi
[ -n "$entry" ] || die "no apt source for '$codename' in /etc/apt/sources.list{,.d/*.sources} to derive from"
uri=${entry%%$'\t'*}
signed=${entry#*$'\t'}

arch=$(dpkg --print-architecture)
mkdir -p "$WORK/sources.list.d" "$WORK/lists/partial" "$WORK/cache/archives/partial"
: >"$WORK/sources.list"
{
  echo "Types: deb deb-src"
  echo "URIs: $uri"
  echo "Suites: $SUITES"
  echo "Components: main"
  [ -z "$signed" ] || echo "Signed-By: $signed"
} >"$WORK/sources.list.d/python.sources"
APT=(-o "Dir::Etc::sourcelist=$WORK/sources.list" -o "Dir::Etc::sourceparts=$WORK/sources.list.d"
  -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o "APT::Architectures=$arch"
  -o "APT::Sandbox::User=root" -q)
log "apt lists for $SUITES (derived from the machine's $codename source) into $WORK"
apt-get "${APT[@]}" update >"$WORK/update.log" 2>&1 || { cat "$WORK/update.log" >&2; die "apt-get update failed"; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/$PKG-build.XXXXXX")
trap 'rm -rf "$stage"' EXIT

check_modules() {
  "$PY" -I -c "import sys; print(sys.version); import $MODULES" \
    || die "$PY lacks one of: $MODULES"
}

# --- source: the upstream tarball of Debian's source package, built with make -j$JOBS ------------
from_source() {
  local versions v got="" dl=$stage/dl
  mkdir -p "$dl"
  versions=$(apt-cache "${APT[@]}" showsrc "$PKG" 2>/dev/null | sed -n 's/^Version: //p' | sort -u -r -V)
  [ -n "$versions" ] || { log "no source package $PKG in $SUITES"; return 1; }
  for v in $versions; do
    if (cd "$dl" && apt-get "${APT[@]}" source --download-only "$PKG=$v") >"$stage/source.log" 2>&1; then
      got=$v
      break
    fi
    log "source $PKG=$v: $(grep -m 1 '^E: Failed to fetch' "$stage/source.log" | sed 's/^E: Failed to fetch .*\///; s/ *\[IP.*//' || echo failed)"
  done
  [ -n "$got" ] || { log "the archive serves no version of the $PKG source ($(echo $versions))"; return 1; }
  local upstream=${got%-*}
  upstream=${upstream#*:}
  log "building $PKG $got from its upstream tarball (${PKG}_$upstream.orig.tar.xz)"

  # Build dependencies: only what the modules above (and a usable venv) need.
  local deps=(build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libsqlite3-dev libbz2-dev
    liblzma-dev libzstd-dev uuid-dev) missing=()
  for d in "${deps[@]}"; do dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'ok installed' || missing+=("$d"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  tar -xJf "$dl/${PKG}_$upstream.orig.tar.xz" -C "$stage"
  local src
  src=$(find "$stage" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -n 1)
  [ -n "$src" ] || die "no Python-* directory in ${PKG}_$upstream.orig.tar.xz"
  rm -rf "$PREFIX"
  # No --enable-optimizations (PGO runs the test suite: ~30 min on 2 cores) nor --with-lto.
  # --disable-test-modules: neither builds nor installs the test suite and its C modules.
  (cd "$src" && ./configure -q --prefix="$PREFIX" --disable-test-modules >"$stage/configure.log" 2>&1) \
    || { tail -n 30 "$stage/configure.log" >&2; die "configure failed"; }
  (cd "$src" && make -s -j"$JOBS" >"$stage/make.log" 2>&1) || { tail -n 40 "$stage/make.log" >&2; die "make failed"; }
  grep -A 20 'necessary bits to build these optional modules were not found\|Failed to build these modules' \
    "$stage/make.log" >&2 || true
  # altinstall: bin/python3.14 only (no python3 link); the stdlib gets its .pyc files, as on Lambda.
  (cd "$src" && make -s altinstall >"$stage/install.log" 2>&1) || { tail -n 40 "$stage/install.log" >&2; die "make altinstall failed"; }
}

# --- binary: Debian's own build, on the glibc it was built for ---------------------------------
# The closure of the shared libraries that python3.14, libpython3.14-minimal and -stdlib depend on.
lib_closure() {
  local queue=("$@") seen=" " p deps
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    case $seen in *" $p "*) continue ;; esac
    seen="$seen$p "
    echo "$p"
    # "Depends: a (>= 1), b | c" -> a b: first alternative, libraries only (not tzdata, netbase...)
    deps=$(apt-cache "${APT[@]}" show --no-all-versions "$p" 2>/dev/null \
      | sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/:any//; s/[[:space:]]//g' \
      | grep -E '^(lib|zlib1g)' || true)
    for d in $deps; do queue+=("$d"); done
  done
}

from_binary() {
  command -v patchelf >/dev/null 2>&1 || {
    log "installing patchelf"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null
  }
  local version debs=$stage/debs root=$stage/root pkgs
  version=$(apt-cache "${APT[@]}" show --no-all-versions "$PKG-minimal" 2>/dev/null | sed -n 's/^Version: //p')
  [ -n "$version" ] || die "no binary package $PKG-minimal in $SUITES"
  pkgs=$(lib_closure "$PKG-minimal" "lib$PKG-minimal" "lib$PKG-stdlib")
  log "unpacking Debian's $PKG $version and its libraries: $(echo $pkgs)"
  mkdir -p "$debs" "$root"
  (cd "$debs" && apt-get "${APT[@]}" download $pkgs) >"$stage/download.log" 2>&1 \
    || { cat "$stage/download.log" >&2; die "apt-get download failed"; }
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  [ -x "$root/usr/bin/$PKG" ] || die "no usr/bin/$PKG in the packages"

  # usr/ becomes the prefix: bin/python3.14, lib/python3.14 (found from the binary's location),
  # lib/<triplet>/ with glibc, OpenSSL, libffi...
  rm -rf "$PREFIX"
  mkdir -p "$PREFIX"
  cp -a "$root/usr/." "$PREFIX/"
  local loader libdir
  loader=$(patchelf --print-interpreter "$PREFIX/bin/$PKG")
  loader=$(find "$PREFIX/lib" -maxdepth 2 -name "${loader##*/}" | head -n 1)
  [ -n "$loader" ] || die "the packages carry no ${loader##*/}"
  libdir=${loader%/*}
  # DT_RPATH (not RUNPATH): it also applies to what the extension modules (_ssl, _ctypes...) load.
  patchelf --set-interpreter "$loader" --force-rpath --set-rpath "$libdir" "$PREFIX/bin/$PKG"
  # Debian's hook points into /etc/python3.14/, absent here.
  rm -f "$PREFIX/lib/$PKG/sitecustomize.py"
  # Bytecode for the stdlib as Debian's postinst would write it: without it every start of this
  # interpreter compiles what it imports (and -B, as the layer's launcher runs it, never caches).
  "$PREFIX/bin/$PKG" -I -m compileall -q -j "$JOBS" \
    "$PREFIX/lib/$PKG" >/dev/null 2>&1 || true
}

built=""
if [ "$FROM" != binary ]; then
  if from_source; then built=source; elif [ "$FROM" = source ]; then die "no $PKG source to build"; fi
fi
if [ -z "$built" ]; then
  log "falling back to Debian's binary packages"
  from_binary
  built=binary
fi
check_modules >&2
log "$PY ready ($built) in $(($(date +%s) - started)) s"
echo "$PY"
