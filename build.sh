#!/usr/bin/env bash
# Build the lambda-logs-http layer zip: one zip for x86_64 and arm64 (the extension is pure Python).
#
#   bash build.sh                  -> dist/lambda-logs-http.zip, unpacked into dist/layer/
#
# Layer layout (a layer unpacks into /opt):
#   extensions/lambda-logs-http                        the launcher (mode 0755); file name = extension name
#   lambda-logs-http/lambda_logs_http/**.py            the package, outside /opt/python (the function's path)
#   lambda-logs-http/lambda_logs_http/**/__pycache__/*.cpython-3XY.pyc
#                                                      bytecode for every Lambda Python found here: /opt is
#                                                      read-only on Lambda, so Python could not cache it and
#                                                      would recompile at every cold start
#
# The zip is deterministic: sorted entries, fixed timestamps and modes, so the same sources and
# interpreters give the same sha256.
#
# Environment (all optional):
#   OUT_DIR   output directory (default: dist/ next to this script)
#   SRC_DIR   directory containing lambda_logs_http/ (default: this script's directory)
#   PYTHON    interpreter that runs the build steps (default: python3)
#   PYTHONS   space-separated interpreters to precompile with, instead of discovering them
#             (/var/lang/bin/python3, $PYENV_ROOT/versions/3.*, .cache/python3.*/bin/ as made by
#             .ci/python314.sh, python3.9..python3.14 on PATH, $PYTHON)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/dist}
SRC_DIR=${SRC_DIR:-$ROOT}
PYTHON=${PYTHON:-python3}
NAME=lambda-logs-http
PKG=lambda_logs_http
# Where the layer lands on Lambda: compiled into the bytecode so tracebacks show real paths.
OPT=/opt

die() { echo "build.sh: error: $*" >&2; exit 1; }

[ -d "$SRC_DIR/$PKG" ] || die "no package at $SRC_DIR/$PKG (set SRC_DIR?)"
# The launcher runs `from lambda_logs_http.__main__ import main`.
[ -f "$SRC_DIR/$PKG/__main__.py" ] || die "$SRC_DIR/$PKG/__main__.py is missing: the launcher needs it"
[ -f "$ROOT/bin/$NAME" ] || die "launcher $ROOT/bin/$NAME is missing"
command -v "$PYTHON" >/dev/null || die "PYTHON=$PYTHON not found"

# Single source of the version: __version__ in the package, read without importing it.
VERSION=$(sed -n 's/^__version__[[:space:]]*=[[:space:]]*["'\'']\([^"'\'']*\)["'\''].*/\1/p' \
  "$SRC_DIR/$PKG/__init__.py" 2>/dev/null | head -n 1 || true)
VERSION=${VERSION:-unknown}

# --- interpreters to precompile with -----------------------------------------------------------
# "major.minor" of an interpreter if it is 3.9 or newer (compileall's -s/-p need 3.9), else nothing.
py_version() {
  "$1" -I -S -c 'import sys; sys.version_info >= (3, 9) and print("%d.%d" % sys.version_info[:2])' \
    2>/dev/null || true
}

candidates=()
if [ -n "${PYTHONS:-}" ]; then
  read -r -a candidates <<<"$PYTHONS"
else
  [ -x /var/lang/bin/python3 ] && candidates+=(/var/lang/bin/python3)
  pyenv_root=${PYENV_ROOT:-}
  if [ -z "$pyenv_root" ] && command -v pyenv >/dev/null 2>&1; then
    pyenv_root=$(pyenv root 2>/dev/null || true)
  fi
  if [ -n "$pyenv_root" ]; then
    for p in "$pyenv_root"/versions/3.*/bin/python3; do
      [ -x "$p" ] && candidates+=("$p")
    done
  fi
  # Interpreters this repository's CI made itself (.ci/python314.sh: 3.14, not packaged here).
  for p in "$ROOT"/.cache/python3.*/bin/python3.*; do
    case $p in *-config) continue ;; esac
    [ -x "$p" ] && candidates+=("$p")
  done
  for v in 3.9 3.10 3.11 3.12 3.13 3.14; do
    p=$(command -v "python$v" 2>/dev/null || true)
    # pyenv's shims only re-run the interpreters found above, 50 ms slower each.
    case $p in "" | */shims/*) continue ;; esac
    candidates+=("$p")
  done
  candidates+=("$(command -v "$PYTHON")")
fi

compilers=()
seen=" "
# (${a[@]+...}: bash 3.2, still macOS's, treats an empty array as unset under set -u)
for p in ${candidates[@]+"${candidates[@]}"}; do
  v=$(py_version "$p")
  if [ -z "$v" ]; then
    [ -n "${PYTHONS:-}" ] && die "PYTHONS: $p is not a Python 3.9+ interpreter"
    continue
  fi
  # One interpreter per minor version: they share the cache tag (cpython-3XY); first found wins.
  case $seen in *" $v "*) continue ;; esac
  seen="$seen$v "
  compilers+=("$p")
done
[ "${#compilers[@]}" -gt 0 ] || die "no Python 3.9+ interpreter found to precompile with"

# --- stage --------------------------------------------------------------------------------------
stage=$(mktemp -d "${TMPDIR:-/tmp}/$NAME-build.XXXXXX")
trap 'rm -rf "$stage"' EXIT

"$PYTHON" -I -S - "$SRC_DIR/$PKG" "$ROOT/bin/$NAME" "$stage" "$NAME" "$PKG" <<'PY'
"""Copy the launcher and the package's .py sources (no tests, no caches) into the stage."""
import os
import shutil
import sys

src, launcher, stage, name, pkg = sys.argv[1:]
SKIP_DIRS = {"__pycache__", "tests", "test"}
dest_pkg = os.path.join(stage, name, pkg)
for dirpath, dirnames, filenames in os.walk(src):
    dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
    rel = os.path.relpath(dirpath, src)
    for f in sorted(filenames):
        if not f.endswith(".py") or f == "conftest.py" or f.startswith("test_") or f.endswith("_test.py"):
            continue
        os.makedirs(os.path.join(dest_pkg, rel), exist_ok=True)
        shutil.copyfile(os.path.join(dirpath, f), os.path.join(dest_pkg, rel, f))
os.makedirs(os.path.join(stage, "extensions"))
shutil.copyfile(launcher, os.path.join(stage, "extensions", name))
PY

# --- precompile ---------------------------------------------------------------------------------
# unchecked-hash: unzipping changes mtimes, and /opt is read-only, so Python must trust the .pyc
# as is. -s/-p rewrite the compiled-in path from the stage to /opt/lambda-logs-http/...
versions=()
for p in "${compilers[@]}"; do
  "$p" -I -m compileall -q --invalidation-mode unchecked-hash -s "$stage" -p "$OPT" \
    "$stage/$NAME/$PKG" >&2 || die "$p failed to compile the package"
  versions+=("$(py_version "$p")")
done

# A Lambda Python without bytecode still works, but compiles the package at every cold start.
missing=()
for v in 3.9 3.10 3.11 3.12 3.13 3.14; do
  case " ${versions[*]} " in *" $v "*) ;; *) missing+=("$v") ;; esac
done
[ ${#missing[@]} -eq 0 ] || echo "build.sh: warning: no bytecode for Python ${missing[*]} (no such interpreter" \
  "found; see PYTHONS): the layer compiles the package at each cold start there" >&2

# --- zip, unpack, report ------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
"$PYTHON" -I -S - "$stage" "$OUT_DIR/$NAME.zip" "$OUT_DIR/layer" "extensions/$NAME" <<'PY'
"""Write a deterministic zip of the stage, unpack it (modes kept) and print path, size and sha256."""
import hashlib
import os
import shutil
import stat
import sys
import zipfile

stage, out, layer_dir, launcher = sys.argv[1:]
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold

entries = []
for dirpath, dirnames, filenames in os.walk(stage):
    dirnames.sort()
    rel = os.path.relpath(dirpath, stage).replace(os.sep, "/")
    if rel != ".":
        entries.append(rel + "/")
    entries.extend((f if rel == "." else rel + "/" + f) for f in filenames)
entries.sort()

tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w") as zf:
    for name in entries:
        info = zipfile.ZipInfo(name, EPOCH)
        info.create_system = 3  # Unix, so unzip applies the mode bits below
        if name.endswith("/"):
            info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: MS-DOS directory
            zf.writestr(info, b"")
            continue
        # World-readable: Lambda runs the extension as an unprivileged user.
        mode = 0o755 if name == launcher else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(os.path.join(stage, name), "rb") as f:
            zf.writestr(info, f.read(), compresslevel=9)
os.replace(tmp, out)

# dist/layer/: exactly what Lambda puts in /opt, for local runs and tests. zipfile's extract()
# drops the mode bits, so apply them here.
shutil.rmtree(layer_dir, ignore_errors=True)
with zipfile.ZipFile(out) as zf:
    for info in zf.infolist():
        path = zf.extract(info, layer_dir)
        os.chmod(path, (info.external_attr >> 16) & 0o7777)

with open(out, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
print("zip     %s" % out)
print("size    %d bytes, %d entries" % (os.path.getsize(out), len(entries)))
print("sha256  %s" % digest)
print("layer   %s" % layer_dir)
PY
echo "version $VERSION"
echo "pyc     ${versions[*]}"
