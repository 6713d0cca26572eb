#!/bin/sh
# System packages the gitops crate (git2 with https + ssh) needs to build: OpenSSL headers and
# pkg-config (libgit2 and libssh2 are vendored and built from source). Run as root; the lead's CI
# calls it before building. Idempotent.
set -eu
missing=""
for p in libssl-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing
