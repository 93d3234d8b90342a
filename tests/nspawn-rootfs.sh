#!/bin/sh
# tests/nspawn-rootfs.sh [DIR]: make sure DIR (default
# /var/cache/pop3d-tests/bookworm) holds a minimal Debian 12 root file
# system that boots systemd in systemd-nspawn and runs pop3d and pop3c:
# systemd, dbus, the libraries the two programs link, and the tools the
# README's systemd how-to uses (nc, curl, openssl, mkpasswd, sudo).
# Built with mmdebstrap once, then kept: a second call returns at once.
# A changed package list or set-up rebuilds it.  Concurrent calls wait for one
# build (flock).  Run as root.  Prints DIR.
set -eu
DIR=${1:-/var/cache/pop3d-tests/bookworm}
MIRROR=${POP3_TEST_MIRROR:-http://deb.debian.org/debian}
PKGS="systemd,systemd-sysv,dbus,libsystemd0,libssl3,libcrypt1,libreadline8"
PKGS="$PKGS,curl,openssl,whois,netcat-openbsd,sudo,procps"
HOOKS=2	# bump when the hooks below change: rebuilds
STAMP=.pop3d-test-packages

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
# A build takes well under a minute on a good mirror; give up after 10.
flock -w 600 9
if [ -f "$DIR/$STAMP" ] && [ "$(cat "$DIR/$STAMP")" = "$PKGS $HOOKS" ]; then
	echo "$DIR"
	exit 0
fi
rm -rf "$DIR.new"
# /etc/hosts and /etc/hostname as the Debian installer writes them (a
# minbase tree has neither): "localhost" must resolve for the README's
# "nc localhost 110".
timeout 600 mmdebstrap --quiet --variant=minbase --include="$PKGS" \
    --customize-hook='echo mail >"$1/etc/hostname"' \
    --customize-hook='printf "%s\n" "127.0.0.1 localhost" \
	"127.0.1.1 mail" "::1 localhost ip6-localhost ip6-loopback" \
	>"$1/etc/hosts"' \
    bookworm "$DIR.new" "$MIRROR" >&2
echo "$PKGS $HOOKS" >"$DIR.new/$STAMP"
rm -rf "$DIR"
mv "$DIR.new" "$DIR"
echo "$DIR"
