#!/bin/sh
# tests/install-deps.sh [--build]: install, with apt-get on Debian 12, what
# building needs (--build) or what building and the whole test suite need
# (default).  Run as root.
set -eu
BUILD="build-essential pkg-config libsystemd-dev libreadline-dev libssl-dev
 libcrypt-dev libseccomp-dev"
TEST="python3 python3-pytest python3-pytest-timeout curl fetchmail tmux
 xinetd systemd netcat-openbsd openssl procps iproute2 whois util-linux man-db
 gdb nginx libnginx-mod-mail haproxy procmail dovecot-core getmail6
 clang libclang-rt-14-dev strace"
# The systemd how-to test: a Debian 12 container under systemd-nspawn.
TEST="$TEST mmdebstrap systemd-container"
PKGS=$BUILD
[ "${1:-}" = "--build" ] || PKGS="$BUILD $TEST"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
