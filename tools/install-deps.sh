#!/bin/sh
# Installs the Debian 12 packages that building, testing and fuzzing ims-agw need, if missing.
set -eu

# systemd is there for systemd-analyze (tests/test_systemd verifies the unit with it); installing
# it in a container neither makes it init nor starts anything.
PACKAGES="gcc make pkg-config libssl-dev libuv1-dev libusrsctp-dev check libsystemd-dev
libinih-dev libmicrohttpd-dev clang libclang-rt-14-dev clang-format openssl ca-certificates iproute2 procps
gnutls-bin systemd valgrind"
# Debian's chromium is the UE of tests/test_browser (headless, on loopback). make check and CI
# install it; AGW_WITH_BROWSER=0 leaves it out (then run the suite with AGW_SKIP_BROWSER=1).
[ "${AGW_WITH_BROWSER:-1}" = 0 ] || PACKAGES="$PACKAGES chromium"

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root: apt-get update && DEBIAN_FRONTEND=noninteractive $cmd" >&2
    exit 1
fi
echo "install-deps: installing$missing"
apt-get update
DEBIAN_FRONTEND=noninteractive $cmd
