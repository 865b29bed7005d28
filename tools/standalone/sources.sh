#!/usr/bin/env bash
# Upstream source tarballs for the standalone interpreter, from Debian's source packages:
#   tools/standalone/sources.sh DIR PACKAGE[=VERSION-PREFIX]...   e.g. DIR python3.13 openssl=3.5. zlib
# For each package (only versions starting with VERSION-PREFIX, when given), prints the path of its .orig tarball in DIR (one line each, in order), and
# downloads it only when DIR has none: a build cache made once keeps working offline.
#
# Debian's archive is reached through the machine's own apt source (its URI and keyring, read from
# /etc/apt at run time, no host name here) pointed at the suites in $STANDALONE_SUITES (default
# "trixie sid"), with private apt lists under DIR/apt (the machine's apt setup is left alone). The
# newest version whose files the archive serves wins; only the .orig tarball is kept (Debian's
# patches are for Debian's own build layout, not for this one). With STANDALONE_OFFLINE set, a
# missing tarball is an error instead of a download.
set -euo pipefail
DIR=$1
shift
SUITES=${STANDALONE_SUITES:-trixie sid}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

log() { echo "sources.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

existing() { # newest DIR/<pkg>_<prefix>*.orig.tar.* already downloaded
  find "$DIR" -maxdepth 1 -name "${1}_${2}*.orig.tar.*" ! -name '*.asc' -printf '%f\n' 2>/dev/null \
    | sort -V | tail -n 1
}

APT=()
apt_setup() {
  [ ${#APT[@]} -eq 0 ] || return 0
  local codename entry uri signed f work=$DIR/apt
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
  # URI and Signed-By of the entry for this release's own suite: deb822 files, then sources.list.
  entry=
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    entry=$(awk -v cn="$codename" 'BEGIN { RS = ""; FS = "\n" }
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
      }' "$f")
    [ -z "$entry" ] || break
  done
  if [ -z "$entry" ] && [ -f /etc/apt/sources.list ]; then
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
  [ -n "$entry" ] || die "no apt source for '$codename' in /etc/apt to derive a deb-src entry from"
  uri=${entry%%$'\t'*}
  signed=${entry#*$'\t'}
  mkdir -p "$work/sources.list.d" "$work/lists/partial" "$work/cache/archives/partial"
  : >"$work/sources.list"
  {
    echo "Types: deb-src"
    echo "URIs: $uri"
    echo "Suites: $SUITES"
    echo "Components: main"
    [ -z "$signed" ] || echo "Signed-By: $signed"
  } >"$work/sources.list.d/standalone.sources"
  APT=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=$work/sources.list.d"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root" -q)
  log "apt source lists for $SUITES (derived from the machine's $codename source)"
  apt-get "${APT[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update failed"; }
}

download() { # newest version of source package $1 (starting with $2) the archive serves
  local pkg=$1 prefix=$2 versions v tmp
  apt_setup
  versions=$(apt-cache "${APT[@]}" showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' \
    | awk -v p="$prefix" '{ v = $0; sub(/^[0-9]+:/, "", v) } index(v, p) == 1' | sort -u -r -V)
  [ -n "$versions" ] || die "no source package $pkg${prefix:+ $prefix*} in $SUITES"
  tmp=$(mktemp -d "$DIR/.dl.XXXXXX")
  for v in $versions; do
    # The archive here may list a version yet answer 404 for its files: try the next one.
    if (cd "$tmp" && apt-get "${APT[@]}" source --download-only "$pkg=$v") >"$tmp/log" 2>&1 \
      || ls "$tmp"/*.orig.tar.* >/dev/null 2>&1; then
      local orig
      orig=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.orig.tar.*" ! -name '*.asc' | head -n 1)
      if [ -n "$orig" ]; then
        mv "$orig" "$DIR/"
        rm -rf "$tmp"
        log "$pkg $v: ${orig##*/}"
        return 0
      fi
    fi
    log "$pkg $v: not served by the archive, trying an older version"
    rm -f "$tmp"/*
  done
  rm -rf "$tmp"
  die "the archive serves no version of the $pkg source ($(echo $versions))"
}

for spec in "$@"; do
  pkg=${spec%%=*}
  prefix=
  [ "$pkg" = "$spec" ] || prefix=${spec#*=}
  name=$(existing "$pkg" "$prefix")
  if [ -z "$name" ]; then
    [ -z "${STANDALONE_OFFLINE:-}" ] || die "no $pkg${prefix:+ $prefix*} tarball in $DIR (STANDALONE_OFFLINE: no download)"
    download "$pkg" "$prefix"
    name=$(existing "$pkg" "$prefix")
  fi
  [ -n "$name" ] || die "no $pkg tarball in $DIR"
  echo "$DIR/$name"
done
