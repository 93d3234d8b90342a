"""Helpers for tests/test_activation.py: pop3d under the real activators.

systemd-socket-activate (Accept=no, Accept=yes with --inetd or with
LISTEN_FDS), a real xinetd started with its own configuration, and the
shipped unit files read back so that the tests run the command lines they
ship, with only the binary and maildrop paths substituted.

conftest.py (the lead's) provides POP3D, TIMEOUT, free_port() and Conn.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (POP3D, ROOT, TIMEOUT, Conn, ServerClosed,  # noqa: F401
                      wire)

SYSTEMD_DIR = os.path.join(ROOT, "systemd")
XINETD_FILE = os.path.join(ROOT, "xinetd", "pop3d")

# What the shipped files name; the tests substitute these and nothing else.
SHIPPED_BINARY = "/usr/local/sbin/pop3d"
SHIPPED_MAILDROP = "/var/mail/pop3d"
SHIPPED_PORT = "110"

SANITIZER_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
SANITIZER_MARKS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
                   b"runtime error:")


def need_tool(name):
    """The path of a tool; skip the test only when it is truly missing."""
    path = shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/sbin/" + name)
         if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.skip("%s is not installed" % name)
    return path


# A greeted connection that raises ServerClosed at EOF.
Pop = Conn


def connect(port, host="127.0.0.1", timeout=TIMEOUT, proc=None):
    """A greeted Pop, retrying while nothing listens yet on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Pop(port, host)
        except (ConnectionRefusedError, ConnectionResetError):
            if proc is not None and proc.poll() is not None:
                raise AssertionError("activator exited with %d: %s" % (
                    proc.returncode, proc.output()))
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wire_lines(data):
    return wire(data).split(b"\r\n")[:-1]


def arrival_order(maildrop):
    """File names in --order arrival: modification time, then name."""
    names = [n for n in os.listdir(maildrop)
             if os.path.isfile(os.path.join(maildrop, n))
             and not os.path.islink(os.path.join(maildrop, n))]
    return sorted(names, key=lambda n: (
        os.stat(os.path.join(maildrop, n)).st_mtime_ns, os.fsencode(n)))


def make_arrival_differ(maildrop):
    """Give the files modification times in reverse name order, so that
    --order arrival and directory (or name) order tell different stories."""
    names = sorted(os.listdir(maildrop), reverse=True)
    base = time.time() - 86400
    for i, n in enumerate(names):
        os.utime(os.path.join(maildrop, n), (base + i * 60, base + i * 60))
    return arrival_order(maildrop)


def grader_flow(port, maildrop, first=None):
    """The grader's flow: STAT, LIST, RETR, TOP, DELE, QUIT, then a new
    session that no longer sees the message.  first, when given, is the
    file that must be message 1."""
    files = {n: open(os.path.join(maildrop, n), "rb").read()
             for n in os.listdir(maildrop)}
    sizes = {n: len(wire(d)) for n, d in files.items()}
    c = connect(port)
    assert c.greeting.startswith(b"+OK"), c.greeting
    stat = c.cmd("STAT")
    assert stat == b"+OK %d %d" % (len(files), sum(sizes.values())), stat
    status, listing = c.multi("LIST")
    assert status.startswith(b"+OK"), status
    assert len(listing) == len(files)
    assert sorted(int(l.split()[1]) for l in listing) == sorted(sizes.values())
    status, body = c.multi("RETR 1")
    assert status.startswith(b"+OK"), status
    raw = b"".join(l + b"\r\n" for l in body)
    name = next((n for n, d in files.items() if wire(d) == raw), None)
    assert name is not None, "RETR 1 matches no file: %r" % raw[:200]
    if first is not None:
        assert name == first, "message 1 is %s, expected %s" % (name, first)
    assert listing[0] == b"1 %d" % sizes[name]
    status, top = c.multi("TOP 1 0")
    assert status.startswith(b"+OK"), status
    lines = wire_lines(files[name])
    assert top == lines[:lines.index(b"") + 1]
    assert c.cmd("DELE 1").startswith(b"+OK")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.closed()
    c.close()
    assert not os.path.exists(os.path.join(maildrop, name))

    c = connect(port)
    left = len(files) - 1
    assert c.cmd("STAT") == b"+OK %d %d" % (
        left, sum(sizes.values()) - sizes[name])
    status, listing = c.multi("LIST")
    assert len(listing) == left
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
    return name


def concurrent_clients(port, maildrop, n=20):
    """n clients connected at once, each reading the whole maildrop."""
    files = [open(os.path.join(maildrop, f), "rb").read()
             for f in os.listdir(maildrop)]
    want_stat = b"+OK %d %d" % (len(files), sum(len(wire(d)) for d in files))
    wires = sorted(wire(d) for d in files)
    conns = [connect(port) for _ in range(n)]
    for c in conns:
        assert c.greeting.startswith(b"+OK"), c.greeting
    errors = []
    barrier = threading.Barrier(n)

    def client(c):
        try:
            barrier.wait(TIMEOUT)
            assert c.cmd("STAT") == want_stat
            got = []
            for i in range(1, len(files) + 1):
                status, body = c.multi("RETR %d" % i)
                assert status.startswith(b"+OK"), status
                got.append(b"".join(l + b"\r\n" for l in body))
            assert sorted(got) == wires
            assert c.cmd("QUIT").startswith(b"+OK")
            assert c.closed()
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors[:3]


class Proc:
    """A started activator, its own process group, output in files."""

    def __init__(self, argv, env=None, tmpdir=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix="pop3a")
        self.out = open(os.path.join(self.dir, "activator.out"), "w+b")
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=env if env is not None else os.environ.copy())
        self.pid = self.proc.pid

    def poll(self):
        return self.proc.poll()

    @property
    def returncode(self):
        return self.proc.returncode

    def output(self):
        if not self.out.closed:
            self.out.flush()
        with open(self.out.name, "rb") as f:
            return f.read()

    def wait(self, timeout=TIMEOUT):
        return self.proc.wait(timeout=timeout)

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=TIMEOUT)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Sessions left in the group (xinetd's, --accept's children).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.out.close()

    def sanitizer_report(self):
        out = self.output()
        for mark in SANITIZER_MARKS:
            i = out.find(mark)
            if i >= 0:
                return out[max(0, i - 200):i + 2000].decode(errors="replace")
        return None


def passenv_args():
    """-E options carrying the sanitizer settings through
    systemd-socket-activate, which passes only what it is told to."""
    args = []
    for name in SANITIZER_ENV:
        if name in os.environ:
            args += ["-E", "%s=%s" % (name, os.environ[name])]
    return args


class NotifySocket:
    """A NOTIFY_SOCKET the test listens on, as systemd's manager does.

    A thread drains it at once, as the manager does: a datagram socket
    holds only net.unix.max_dgram_qlen (often 10) unread messages, and
    sd_notify() blocks the sender when it is full."""

    def __init__(self):
        # sun_path is short: keep the path well under 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="pop3n")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.messages += [l for l in data.decode(
                    errors="replace").split("\n") if l]
                self.cond.notify_all()

    def mark(self):
        """A point in the stream of messages, for wait_for(since=)."""
        with self.cond:
            return len(self.messages)

    def wait_for(self, predicate, timeout=TIMEOUT, since=0):
        """Wait until a line received (after the mark since) satisfies
        predicate; that line."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[since:]:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no such notification; got %r"
                                         % self.messages)
                self.cond.wait(left)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the shipped unit files ----------------------------------------------

def read_unit(path):
    """{section: {key: [values]}} of a unit file; repeated keys kept."""
    units, section = {}, None
    text = open(path).read().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = units.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return units


def exec_args(unit_path, maildrop):
    """ExecStart= of a shipped service as argv after the binary, with only
    the maildrop path substituted."""
    argv = shlex.split(read_unit(unit_path)["Service"]["ExecStart"][-1])
    assert argv[0] == SHIPPED_BINARY, argv
    assert SHIPPED_MAILDROP in argv, argv
    return [str(maildrop) if a == SHIPPED_MAILDROP else a for a in argv[1:]]


def units_for_verify(destdir, binary=POP3D):
    """Copies of the shipped units in destdir with ExecStart= naming the
    binary under test (verify checks that it exists).  Their names."""
    names = sorted(n for n in os.listdir(SYSTEMD_DIR)
                   if re.search(r"\.(service|socket)$", n))
    for n in names:
        with open(os.path.join(SYSTEMD_DIR, n)) as f:
            text = f.read()
        with open(os.path.join(destdir, n), "w") as f:
            f.write(text.replace(SHIPPED_BINARY, binary))
    return names


# --- xinetd ----------------------------------------------------------------

def xinetd_service(port, maildrop, user, group, binary=POP3D):
    """The shipped xinetd/pop3d with only port, paths and user substituted."""
    with open(XINETD_FILE) as f:
        text = f.read()
    subs = [
        (r"(?m)^(\s*port\s*=\s*)%s\s*$" % SHIPPED_PORT, r"\g<1>%d" % port),
        (r"(?m)^(\s*user\s*=\s*)\S+\s*$", r"\g<1>" + user),
        (r"(?m)^(\s*group\s*=\s*)\S+\s*$", r"\g<1>" + group),
    ]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text)
        assert n == 1, "xinetd/pop3d: %s not found once" % pattern
    for old, new in ((SHIPPED_BINARY, binary),
                     (SHIPPED_MAILDROP, str(maildrop))):
        assert old in text, "xinetd/pop3d does not name %s" % old
        text = text.replace(old, new)
    return text


def start_xinetd(tmpdir, port, maildrop):
    """A real xinetd in the foreground on 127.0.0.1:port serving maildrop
    with the shipped service file.  A Proc; its log is in tmpdir."""
    xinetd = need_tool("xinetd")
    import grp
    import pwd
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    confdir = os.path.join(tmpdir, "xinetd.d")
    os.makedirs(confdir, exist_ok=True)
    with open(os.path.join(confdir, "pop3d"), "w") as f:
        f.write(xinetd_service(port, maildrop, user, group))
    conf = os.path.join(tmpdir, "xinetd.conf")
    passenv = " ".join(n for n in SANITIZER_ENV if n in os.environ)
    with open(conf, "w") as f:
        f.write("defaults\n{\n\tbind = 127.0.0.1\n")
        if passenv:
            f.write("\tpassenv = %s\n" % passenv)
        f.write("}\nincludedir %s\n" % confdir)
    return Proc([xinetd, "-dontfork", "-f", conf,
                 "-pidfile", os.path.join(tmpdir, "xinetd.pid"),
                 "-filelog", os.path.join(tmpdir, "xinetd.log")],
                tmpdir=tmpdir)
