#!/bin/sh
# tests/nspawn-rootfs.sh [CACHE]: make sure CACHE (default
# /var/cache/pop3d-tests) holds a minimal Debian 12 root file system that
# boots systemd in systemd-nspawn and runs pop3d and pop3c: systemd, dbus,
# the libraries the two programs link, and the tools the README's systemd
# and xinetd how-tos use (nc, curl, openssl, mkpasswd, sudo, xinetd).
# Built with mmdebstrap once, then kept: a second call returns at once.
# Prints the tree's path, CACHE/bookworm-HASH, HASH from this script's
# text: a changed package list or set-up gets a tree of its own, so runs
# of older and newer versions side by side never pull a tree from under
# each other.  Concurrent calls wait for one build (flock).  Run as root.
set -eu
CACHE=${1:-/var/cache/pop3d-tests}
MIRROR=${POP3_TEST_MIRROR:-http://deb.debian.org/debian}
PKGS="systemd,systemd-sysv,dbus,libsystemd0,libssl3,libcrypt1,libreadline8"
PKGS="$PKGS,curl,openssl,whois,netcat-openbsd,sudo,procps,xinetd"
HASH=$(md5sum <"$0" | cut -c1-12)
DIR=$CACHE/bookworm-$HASH
STAMP=.pop3d-test-complete

mkdir -p "$CACHE"
exec 9>"$DIR.lock"
# A build takes well under a minute on a good mirror; give up after 10.
flock -w 600 9
if [ -f "$DIR/$STAMP" ]; then
	echo "$DIR"
	exit 0
fi
rm -rf "$DIR"
# /etc/hosts and /etc/hostname as the Debian installer writes them (a
# minbase tree has neither): "localhost" must resolve for the README's
# "nc localhost 110".
timeout 600 mmdebstrap --quiet --variant=minbase --include="$PKGS" \
    --customize-hook='echo mail >"$1/etc/hostname"' \
    --customize-hook='printf "%s\n" "127.0.0.1 localhost" \
	"127.0.1.1 mail" "::1 localhost ip6-localhost ip6-loopback" \
	>"$1/etc/hosts"' \
    bookworm "$DIR" "$MIRROR" >&2
touch "$DIR/$STAMP"
echo "$DIR"
