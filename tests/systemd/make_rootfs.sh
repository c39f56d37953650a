#!/usr/bin/env bash
# Build (once) the Debian 12 root file system the real-systemd test boots
# with systemd-nspawn: debootstrap's minbase plus systemd and Python, from
# the Debian mirror this machine's apt already uses. Kept between runs; a
# half-built tree is never taken for a finished one (built aside, then
# renamed).
#
#   make_rootfs.sh DIR     (default /var/cache/cachemgr-ci/systemd-bookworm)
set -euo pipefail

root=${1:-/var/cache/cachemgr-ci/systemd-bookworm}
packages=systemd,systemd-sysv,dbus,python3,python3-venv,procps,passwd,util-linux

# The mirror of the first "deb" entry apt uses here (deb822 or one-line).
mirror=$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
    } | grep -v security | head -n1 || true
)
mirror=${mirror:-http://deb.debian.org/debian}

if [ -e "$root/.complete" ] && [ "$(cat "$root/.complete")" = "$packages" ]; then
    echo "rootfs: using $root"
    exit 0
fi
rm -rf "$root" "$root.new"
mkdir -p "$(dirname "$root")"
echo "rootfs: debootstrap bookworm from $mirror into $root (a few minutes)"
debootstrap --variant=minbase --include="$packages" bookworm "$root.new" "$mirror" \
    > "$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
# A container needs neither apt's package lists nor its downloads.
rm -rf "$root.new"/var/lib/apt/lists/* "$root.new"/var/cache/apt/archives/*.deb
echo "$packages" > "$root.new/.complete"
mv "$root.new" "$root"
echo "rootfs: ready"
