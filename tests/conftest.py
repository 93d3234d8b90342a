"""Shared fixtures for the end-to-end tests.

The binaries under test come from $POP3_BINDIR (default: the repository
root), so the same tests run against the normal and the sanitizer build.
Every socket read has a timeout; every started process is killed with its
process group at the end of its test.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDIR = os.path.abspath(os.environ.get("POP3_BINDIR", ROOT))
POP3D = os.path.join(BINDIR, "pop3d")
POP3C = os.path.join(BINDIR, "pop3c")
SAMPLES = os.path.join(ROOT, "maildrop")
TIMEOUT = 10


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that was free a moment ago on the loopback interface."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return lines
            lines.append(line[1:] if line.startswith(b".") else line)

    def multi(self, command):
        status = self.cmd(command)
        if not status.startswith(b"+OK"):
            return status, None
        return status, self.body()

    def closed(self):
        """True when the server has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


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
        s.stop()
