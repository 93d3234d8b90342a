"""Shared fixtures for the end-to-end tests.

The binaries under test come from $POP3_BINDIR (default: the repository
root), so the same tests run against the normal and the sanitizer build.
Every socket read has a timeout; every started process is killed with its
process group at the end of its test.
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDIR = os.path.abspath(os.environ.get("POP3_BINDIR", ROOT))
POP3D = os.path.join(BINDIR, "pop3d")
POP3C = os.path.join(BINDIR, "pop3c")


def sanitizer_build():
    """True for the ASan+UBSan build (its sandbox lets the sanitizers'
    own calls through)."""
    try:
        with open(POP3D, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
SAMPLES = os.path.join(ROOT, "maildrop")
TIMEOUT = 10


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that was free a moment ago on the loopback interface, and
    for the wildcard address of both families, which `pop3d PORT` binds
    (it refuses to serve one family when the other's port is taken)."""
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6) as s6, \
                    socket.socket(socket.AF_INET) as s4:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.bind(("::", port))
                s4.bind(("0.0.0.0", port))
        except OSError:
            continue            # taken for one family: another port
        return port
    raise AssertionError("no port free for both address families")


def wait_port(port, host="127.0.0.1", timeout=TIMEOUT, proc=None):
    """Wait until something accepts on host:port; fail if proc dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                # Read the greeting so the probe session ends cleanly.
                s.settimeout(2)
                try:
                    s.recv(512)
                except OSError:
                    pass
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listening on %s:%d" % (host, port))


class Server:
    """pop3d in its own listener mode: pop3d [OPTIONS] PORT MAILDROP."""

    def __init__(self, maildrop, *opts, port=None, env=None, prefix=(),
                 wait=True):
        """prefix: a command to run pop3d under (ip netns exec ...);
        wait=False: return at once, the caller waits its own way."""
        self.port = port or free_port()
        self.maildrop = str(maildrop)
        self.argv = [*prefix, POP3D, *opts, str(self.port), self.maildrop]
        # The foreground listener logs to stderr: a file never fills up
        # the way an unread pipe would.
        self.logfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self.logfile,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, **(env or {})))
        if wait:
            wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.logfile.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logfile.close()
        return self.proc.returncode

    def output(self):
        """What the server wrote on stdout and stderr so far."""
        self.logfile.seek(0)
        return self.logfile.read()


class ServerClosed(AssertionError):
    """The server closed the connection where a reply was expected."""


class Conn:
    """A raw POP3 connection with exact-line helpers.  Give a port (and
    host) to connect, or sock= for a socket already open (TLS, a
    socketpair).  With greet, the greeting is read and must be +OK."""

    def __init__(self, port=None, host="127.0.0.1", greet=True,
                 timeout=TIMEOUT, sock=None):
        self.eof = False
        self.sock = sock if sock is not None else \
            socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.greeting = self.line() if greet else None
        if greet:
            assert self.greeting.startswith(b"+OK"), self.greeting

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        """One line without its CRLF; raises ServerClosed at EOF."""
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                raise ServerClosed("connection closed; unterminated data %r"
                                   % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, command):
        self.send(command + "\r\n")
        return self.line()

    def body(self):
        """Lines of a multi-line body up to '.', byte-stuffing undone."""
        return self.raw_body().split(b"\r\n")[:-1]

    def raw_body(self):
        """The text of a multi-line body: byte-stuffing undone, CRLF kept."""
        out = []
        while True:
            line = self.line()
            if line == b".":
                return b"".join(out)
            if line.startswith(b"."):
                line = line[1:]
            out.append(line + b"\r\n")

    def multi(self, command):
        status = self.cmd(command)
        if not status.startswith(b"+OK"):
            return status, None
        return status, self.body()

    def multi_raw(self, command):
        status = self.cmd(command)
        if not status.startswith(b"+OK"):
            return status, None
        return status, self.raw_body()

    def ok(self, command):
        """Send command, assert +OK, return the status line."""
        status = self.cmd(command)
        assert status.startswith(b"+OK"), (command, status)
        return status

    def err(self, command):
        status = self.cmd(command)
        assert status.startswith(b"-ERR"), (command, status)
        return status

    def stat(self):
        status = self.ok("STAT")
        m = re.match(rb"^\+OK (\d+) (\d+)(?: .*)?$", status)
        assert m, status
        return int(m.group(1)), int(m.group(2))

    def scan_list(self):
        """LIST without argument as {number: size}."""
        status, lines = self.multi("LIST")
        assert status.startswith(b"+OK"), status
        out = {}
        for line in lines:
            m = re.match(rb"^(\d+) (\d+)(?: .*)?$", line)
            assert m, line
            out[int(m.group(1))] = int(m.group(2))
        return out

    def uidl_list(self):
        status, lines = self.multi("UIDL")
        assert status.startswith(b"+OK"), status
        out = {}
        for line in lines:
            m = re.match(rb"^(\d+) (\S+)$", line)
            assert m, line
            out[int(m.group(1))] = m.group(2)
        return out

    def login(self, user, password):
        """USER then PASS; the first reply that is not +OK, else PASS's."""
        r = self.cmd("USER " + user)
        if not r.startswith(b"+OK"):
            return r
        return self.cmd("PASS " + password)

    def starttls(self, ca, hostname="localhost"):
        """STLS, then TLS on the same socket, checked against ca."""
        assert self.cmd("STLS").startswith(b"+OK")
        assert self.buf == b""
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = True
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)
        self.sock.settimeout(TIMEOUT)

    def quit(self):
        status = self.cmd("QUIT")
        assert status.startswith(b"+OK"), status
        return status

    def closed(self):
        """True when the server has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def wait_closed(self, timeout=TIMEOUT):
        """True if the server closes with no further bytes within timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            return False
        assert data == b"" and self.buf == b"", \
            "unexpected bytes before close: %r" % (self.buf + data)
        return True

    def close(self):
        self.sock.close()


@pytest.fixture
def term(tmp_path):
    """Factory: term(args, env) starts pop3c in tmux; all closed after."""
    from pop3c_util import Term     # pop3c_util imports this module
    started = []

    def start(args, env):
        t = Term(tmp_path, args, env)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def traced_env():
    """The environment for a program run under gdb or strace: LeakSanitizer
    cannot stop the world of a traced process and would report a fatal
    error at exit, so leak checking is off there (elsewhere it stays on)."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def wire(data):
    """The octets RETR sends for a message file, the one oracle of the
    tests (SPEC 2, RFC 1939 section 11): the file's end of line is LF and
    goes out as CRLF (a CRLF in the file stays one), every other byte is
    content, and a last line without LF gets CRLF.  So a file ending in a
    bare CR ends in CR CR LF on the wire: the CR is content, not half a
    line end."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


@pytest.fixture
def maildrop(tmp_path):
    """A scratch copy of the sample maildrop (times kept)."""
    dest = tmp_path / "maildrop"
    shutil.copytree(SAMPLES, dest)
    return dest


@pytest.fixture
def empty_maildrop(tmp_path):
    dest = tmp_path / "empty"
    dest.mkdir()
    return dest


@pytest.fixture
def server():
    """Factory: server(maildrop, *opts) starts pop3d; all are stopped after."""
    started = []

    def start(maildrop, *opts, **kw):
        s = Server(maildrop, *opts, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        # Shown by pytest only when the test failed: the server's side.
        if not s.logfile.closed:
            print("--- %s\n%s" % (" ".join(s.argv),
                  s.output().decode(errors="replace")[-4000:]))
        s.stop()


@pytest.fixture(scope="session")
def certs():
    """A test CA and a server certificate for localhost and 127.0.0.1, in
    a folder --user nobody can read (auth_util.make_certs)."""
    from auth_util import make_certs
    d = tempfile.mkdtemp(prefix="pop3d-certs-", dir="/var/tmp")
    os.chmod(d, 0o755)
    try:
        yield make_certs(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def stdio_pop3d(*args, stderr_too=False):
    """pop3d ARGS as inetd runs it: one end of a socketpair as stdin and
    stdout (and stderr with stderr_too, as xinetd passes it).  Yields
    (process, the other end); the process's end's inode is
    process.conn_inode.  A process still running at the end is killed."""
    a, b = socket.socketpair()
    p = subprocess.Popen([POP3D, *args], stdin=b, stdout=b,
                         stderr=b if stderr_too else subprocess.DEVNULL,
                         start_new_session=True)
    p.conn_inode = os.fstat(b.fileno()).st_ino
    b.close()
    try:
        yield p, a
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
