"""A real systemd as PID 1 in a systemd-nspawn container, for
tests/test_systemd_nspawn.py.

The Debian 12 root file system comes from tests/nspawn-rootfs.sh (built
once per machine, kept under /var/cache/pop3d-tests).  Each container
boots an overlay of it, so the kept copy never changes: the writes of one
run land in a temporary upper directory that is thrown away with the
container.  The project goes in with `make install DESTDIR=...`.

The host need not run systemd: nspawn runs with --register=no --keep-unit,
in a cgroup of its own so that containers of concurrent runs do not meet.
The container has a private network (only its own loopback), so port 110
inside is nobody else's.  Commands run inside with nsenter into the
namespaces of the container's PID 1.
"""
import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ROOT

ROOTFS_SCRIPT = os.path.join(ROOT, "tests", "nspawn-rootfs.sh")
CACHE = os.environ.get("POP3_TEST_CACHE", "/var/cache/pop3d-tests")
WORK_PREFIX = "pop3d-nspawn-"
WORK_PARENT = "/var/tmp"
# Building the root file system: about 15 s on a near mirror, bounded by
# the script itself at 600 s.
BUILD_TIMEOUT = 660
BOOT_TIMEOUT = 120
CMD_TIMEOUT = 60
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def need_nspawn():
    """Skip unless this host can run the container at all."""
    if os.geteuid() != 0:
        pytest.skip("systemd-nspawn needs root")
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)


def build_rootfs():
    """The kept root file system, built now if absent."""
    out = subprocess.run([ROOTFS_SCRIPT, CACHE], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=BUILD_TIMEOUT)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout.decode().strip()


def _cgroup_mounts():
    """(mount point, our path in it) of the cgroup2 and the name=systemd
    hierarchies, those nspawn sets up the container's cgroup in."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctl, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctl == "":
                paths["cgroup2"] = path
            elif ctl == "name=systemd":
                paths["systemd"] = path
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mnt = left.split()[4]
            fstype, _, opts = right.split()[:3]
            if fstype == "cgroup2" and "cgroup2" in paths:
                found.append((mnt, paths["cgroup2"]))
            elif fstype == "cgroup" and "name=systemd" in opts.split(","):
                found.append((mnt, paths.get("systemd", "/")))
    return found


def _remove_cgroup(path):
    """rmdir a cgroup tree, deepest first (the tree is empty by now)."""
    for top, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            try:
                os.rmdir(os.path.join(top, d))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _stop_nspawn(pid, work):
    """Stop the nspawn of a killed earlier run, if it still runs there."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if (work + "/root").encode() not in f.read().split(b"\0"):
                return
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            time.sleep(0.1)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def sweep_stale():
    """Remove what a killed earlier run left behind (its pid is gone):
    its container, overlay, work directory and cgroups."""
    for work in glob.glob(os.path.join(WORK_PARENT, WORK_PREFIX + "*")):
        m = re.search(r"-(\d+)-[^-/]+$", work)
        if not m or _pid_alive(int(m.group(1))):
            continue
        try:
            with open(os.path.join(work, "nspawn.pid")) as f:
                _stop_nspawn(int(f.read()), work)
        except (OSError, ValueError):
            pass
        root = os.path.join(work, "root")
        if _is_mounted(root):
            subprocess.run(["umount", "-l", root], check=False)
        if _is_mounted(root):
            continue
        shutil.rmtree(work, ignore_errors=True)
        for mnt, path in _cgroup_mounts():
            _remove_cgroup(os.path.join(mnt, path.lstrip("/"),
                                        os.path.basename(work)))


class Container:
    """A booted container on an overlay of the kept root file system.

    Use as a context manager: the container is powered off (killed after
    a grace period), the overlay unmounted and every directory and cgroup
    it made removed, whatever happened in between."""

    def __init__(self, rootfs):
        sweep_stale()
        # Also the machine name: letters, digits and "-" only.
        self.work = os.path.join(WORK_PARENT, "%s%d-%s" % (
            WORK_PREFIX, os.getpid(), secrets.token_hex(4)))
        os.mkdir(self.work, 0o700)
        self.name = os.path.basename(self.work)
        self.root = os.path.join(self.work, "root")
        self.proc = None
        self.leader = None
        self.cgroups = []
        self.log = open(os.path.join(self.work, "console.log"), "wb")
        for d in ("upper", "ovl-work", "root"):
            os.mkdir(os.path.join(self.work, d))
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=%s,upperdir=%s/upper,workdir=%s/ovl-work"
             % (rootfs, self.work, self.work), self.root],
            check=True, timeout=CMD_TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def install(self):
        """make install DESTDIR=<the container's root>."""
        out = subprocess.run(["make", "-s", "-C", ROOT, "install",
                              "DESTDIR=" + self.root],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=300)
        assert out.returncode == 0, out.stdout.decode(errors="replace")

    def _own_cgroup(self):
        """Make the cgroups to start nspawn in (best effort: a host whose
        hierarchy we cannot write still works, one container at a time)."""
        for mnt, path in _cgroup_mounts():
            d = os.path.join(mnt, path.lstrip("/"), self.name)
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
            except OSError:
                continue
            if d not in self.cgroups:
                self.cgroups.append(d)

    def _enter_cgroups(self):
        # In the child, between fork and exec: no Python-level locks used.
        for d in self.cgroups:
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write("0")
            except OSError:
                pass

    def _find_leader(self):
        """The container's PID 1: the child of nspawn that is PID 1 in its
        own PID namespace (nspawn forks an intermediate child first)."""
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                              stdout=subprocess.PIPE).stdout.split()
        for pid in map(int, kids):
            try:
                with open("/proc/%d/status" % pid) as f:
                    ns = [l.split()[1:] for l in f if l.startswith("NSpid:")]
            except OSError:
                continue
            if ns and len(ns[0]) >= 2 and ns[0][-1] == "1":
                return pid
        return None

    def boot(self):
        """Boot systemd and wait until the system is up."""
        self._own_cgroup()
        argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                "--private-network", "--link-journal=no",
                "--console=read-only", "--timezone=off",
                "--machine=" + self.name, "--hostname=mail",
                # nspawn's own filter lacks Landlock (systemd 252): let
                # the units' filters decide, as on a host.
                "--system-call-filter=landlock_create_ruleset "
                "landlock_add_rule landlock_restrict_self",
                "-D", self.root, "--boot"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=self._enter_cgroups)
        with open(os.path.join(self.work, "nspawn.pid"), "w") as f:
            f.write("%d\n" % self.proc.pid)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.leader is None:
            assert self.proc.poll() is None, \
                "nspawn exited with %d: %s" % (self.proc.returncode,
                                               self.console())
            assert time.monotonic() < deadline, "no container PID 1"
            self.leader = self._find_leader()
            if self.leader is None:
                time.sleep(0.1)
        state = err = ""
        while time.monotonic() < deadline:
            r = self.sh("systemctl is-system-running --wait", check=False,
                        timeout=max(1, deadline - time.monotonic()))
            state, err = r.stdout.strip(), r.stderr.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.2)
        assert state in ("running", "degraded"), \
            "container did not come up (%s, %s): %s" % (state, err,
                                                         self.console())
        return self

    def console(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def sh(self, script, input=None, check=True, timeout=CMD_TIMEOUT,
           text=True):
        """Run a shell script as root in the container, in /root, with a
        clean environment and no controlling terminal (so that password
        prompts read their input).  Returns the CompletedProcess: text with
        newlines translated, or bytes as they are (text=False)."""
        argv = ["nsenter", "-t", str(self.leader), "-a", "-r", "-w",
                "/usr/bin/env", "-i", "PATH=" + PATH, "HOME=/root",
                "LANG=C.UTF-8", "TERM=dumb", "/bin/sh", "-c",
                "cd /root && " + script]
        r = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=text,
                           timeout=timeout, start_new_session=True)
        if check:
            assert r.returncode == 0, \
                "%r exited with %d\nstdout: %s\nstderr: %s" % (
                    script, r.returncode, r.stdout, r.stderr)
        return r

    def path(self, inside):
        """The host's path of a file inside the container."""
        return os.path.join(self.root, inside.lstrip("/"))

    def wait_for(self, script, what, timeout=CMD_TIMEOUT):
        """Poll a script until it succeeds; its last result."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.sh(script, check=False)
            if r.returncode == 0:
                return r
            assert time.monotonic() < deadline, \
                "timed out waiting for %s: %s%s" % (what, r.stdout, r.stderr)
            time.sleep(0.2)

    def reboot(self):
        """Power off, then boot the same tree again."""
        self.poweroff()
        self.leader = None
        return self.boot()

    def poweroff(self):
        if self.proc is not None and self.proc.poll() is None:
            # SIGTERM makes nspawn power the container off cleanly.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                if self.leader is not None:
                    try:
                        os.kill(self.leader, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait(timeout=30)

    def close(self):
        self.poweroff()
        self.log.close()
        if _is_mounted(self.root):
            r = subprocess.run(["umount", self.root], check=False,
                               timeout=CMD_TIMEOUT)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", self.root], check=False,
                               timeout=CMD_TIMEOUT)
        for d in self.cgroups:
            _remove_cgroup(d)
        shutil.rmtree(self.work, ignore_errors=True)
