#!/usr/bin/env bash
# Fetch AWS's Lambda Runtime Interface Emulator (RIE) into the gitignored cache and print its path.
#
# AWS publishes no RIE package on the registries this project can reach, but the AWS SAM CLI wheel on
# PyPI ships the official binaries (samcli/local/rapid/aws-lambda-rie-{x86_64,arm64}). We download that
# one pinned wheel with pip (hash-checked), extract only the binary for this machine, and cache it as
# .cache/rie/aws-lambda-rie-<arch>. The binary never goes anywhere else in the repo tree.
#
# Usage: tests/rie/fetch_rie.sh            -> prints the binary's absolute path on stdout
# Env:   RIE_CACHE_DIR  cache directory (default: <repo>/.cache/rie)
#        PYTHON         interpreter whose pip to use (default: <repo>/.venv/bin/python, else python3)
set -euo pipefail

SAM_CLI_VERSION=1.170.0
# sha256 of aws_sam_cli-1.170.0-py3-none-any.whl: pip refuses anything else.
WHEEL_SHA256=24ebaf5ecba38dc1758089968cb89ab61e124b84e92a344fc7a2771a47f4d0bf

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest=${RIE_CACHE_DIR:-$repo/.cache/rie}

case $(uname -m) in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "fetch_rie: unsupported machine $(uname -m)" >&2; exit 2 ;;
esac
bin=$dest/aws-lambda-rie-$arch

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python=$repo/.venv/bin/python; else python=python3; fi
fi

mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'aws-sam-cli==%s --hash=sha256:%s\n' "$SAM_CLI_VERSION" "$WHEEL_SHA256" >"$tmp/requirements.txt"
# stdout of pip goes to stderr: this script's stdout is only the path.
timeout 300 "$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  --timeout 60 -r "$tmp/requirements.txt" -d "$tmp" >&2

# Extract one member with the stdlib (unzip may be missing); write beside the target, then rename,
# so a concurrent run never sees a half-written binary.
"$python" - "$tmp" "samcli/local/rapid/aws-lambda-rie-$arch" "$bin.partial.$$" <<'EOF'
import glob, shutil, sys, zipfile
tmp, member, out = sys.argv[1:]
(wheel,) = glob.glob(tmp + "/aws_sam_cli-*.whl")
with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
chmod 755 "$bin.partial.$$"
mv -f "$bin.partial.$$" "$bin"
echo "$bin"
