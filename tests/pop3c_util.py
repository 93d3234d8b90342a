"""Helpers for the pop3c tests (tests/test_pop3c.py).

- ScriptedServer: a one-connection POP3 server in a thread, driven by a
  function from each received command line to what to send back (whole,
  one byte per write, or a close); it records every line it receives.
- run_pop3c(): pop3c with piped stdin, its own session (so no /dev/tty),
  a timeout, and a private HOME and XDG_STATE_HOME.
- Term: pop3c in a real terminal through tmux (send-keys, capture-pane),
  on a private tmux socket that is killed at the end.
- wire_retr(): what a server sent for RETR n, byte-stuffing undone.
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

from conftest import POP3C, TIMEOUT

CLOSE = object()		# action: close the connection


class Bytewise:
    """Action: send these bytes one per write."""

    def __init__(self, data):
        self.data = data


class Pause:
    """Action: wait this many seconds before the next action."""

    def __init__(self, seconds):
        self.seconds = seconds


def default_respond(line):
    if line.upper() == b"QUIT":
        return [b"+OK bye\r\n", CLOSE]
    return [b"-ERR unknown command\r\n"]


class ScriptedServer:
    """Accepts one connection on 127.0.0.1, sends greeting, then answers
    each CRLF-terminated line with respond(line) -> list of actions (bytes,
    Bytewise, CLOSE).  received holds the lines, in order."""

    def __init__(self, respond=default_respond, greeting=b"+OK scripted\r\n",
                 family=socket.AF_INET, host="127.0.0.1"):
        self.respond = respond
        self.greeting = greeting
        self.received = []
        self.error = None
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, conn, action):
        if isinstance(action, Pause):
            time.sleep(action.seconds)
        elif isinstance(action, Bytewise):
            for i in range(len(action.data)):
                conn.sendall(action.data[i:i + 1])
                time.sleep(0.001)
        else:
            conn.sendall(action)

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError as e:
            self.error = e
            return
        try:
            conn.settimeout(TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._send(conn, self.greeting)
            buf = b""
            while True:
                while b"\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                self.received.append(line)
                for action in self.respond(line):
                    if action is CLOSE:
                        return
                    self._send(conn, action)
        except OSError as e:
            self.error = e
        finally:
            conn.close()

    def join(self):
        self.thread.join(TIMEOUT)
        self.sock.close()
        assert not self.thread.is_alive(), "scripted server still running"


def script(table):
    """A respond function from {command: [actions]}; QUIT says bye."""
    def respond(line):
        if line in table:
            return table[line]
        if line.upper() == b"QUIT":
            return [b"+OK bye\r\n", CLOSE]
        return [b"-ERR unexpected %s\r\n" % line]
    return respond


def safe_name(uid):
    """A unique-id as pop3c names its file (without .eml): letters,
    digits, '_', '-' and a '.' not first kept, every other octet %XX."""
    out = []
    for i, ch in enumerate(uid.encode()):
        c = chr(ch)
        if c.isascii() and (c.isalnum() or c in "_-" or (c == "." and i)):
            out.append(c)
        else:
            out.append("%%%02X" % ch)
    return "".join(out)


def outside_address():
    """An IPv4 address of this machine that is not loopback, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True,
                             timeout=TIMEOUT).stdout.decode()
    except OSError:
        return None
    for a in out.split():
        if "." in a and not a.startswith("127."):
            return a
    return None


def child_pid(pid):
    """The first child of process pid (the program a tmux shell runs)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("no child of %d" % pid)


def param(name):
    """A constant from params.h."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "params.h")) as f:
        m = re.search(r"^#define\s+%s\s+(\d+)" % name, f.read(), re.M)
    return int(m.group(1))


def client_env(tmp_path, **extra):
    home = tmp_path / "home"
    state = tmp_path / "state"
    home.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(state))
    env.pop("INPUTRC", None)
    env.pop("PAGER", None)
    env.update(extra)
    return env


def run_pop3c(args, stdin=b"", env=None, cwd=None, stdout=None,
              timeout=TIMEOUT, started=None):
    """Run pop3c with piped stdin; returns (status, stdout, stderr).
    With stdout given (a file), the output goes there and b"" is returned.
    started(proc) is called once the process runs."""
    proc = subprocess.Popen(
        [POP3C, *map(str, args)], stdin=subprocess.PIPE,
        stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=cwd, start_new_session=True)
    if started is not None:
        started(proc)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, out or b"", err


def peak_rss_kib(pid):
    """VmHWM of a running process (its peak since exec), in KiB."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1))


def wire_retr(port, n, host="127.0.0.1"):
    """The octets of RETR n as pop3d sends them, un-stuffed, CRLF kept."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "closed before the greeting"
            buf += chunk
        buf = buf.split(b"\r\n", 1)[1]
        s.sendall(b"RETR %d\r\n" % n)
        while not (b"\r\n.\r\n" in buf and buf.startswith(b"+OK")):
            chunk = s.recv(65536)
            assert chunk, "closed in the middle of RETR"
            buf += chunk
        s.sendall(b"QUIT\r\n")
    body = buf.split(b"\r\n", 1)[1]
    body = body[:body.index(b"\r\n.\r\n") + 2]
    lines = body.split(b"\r\n")[:-1]
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n"
                    for l in lines)


class Term:
    """pop3c in a tmux pane of its own, on a private tmux server, started
    in tmp_path."""

    serial = 0

    def __init__(self, tmp_path, args, env):
        Term.serial += 1
        self.sockpath = str(tmp_path / ("tmux%d.sock" % Term.serial))
        self.tmux = ["tmux", "-S", self.sockpath, "-f", "/dev/null"]
        envs = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in
                        sorted(env.items())
                        if k in ("HOME", "XDG_STATE_HOME", "PATH", "LANG", "PAGER")
                        or k.startswith(("ASAN_", "UBSAN_", "LSAN_")))
        cmd = "env -i TERM=xterm %s %s; echo EXIT=$?; sleep 600" % (
            envs, " ".join(shlex.quote(str(a)) for a in [POP3C, *args]))
        subprocess.run(self.tmux + ["new-session", "-d", "-c", str(tmp_path),
                                    "-x", "132", "-y", "50", cmd],
                       check=True, timeout=TIMEOUT)

    def keys(self, *keys):
        subprocess.run(self.tmux + ["send-keys", *keys], check=True,
                       timeout=TIMEOUT)

    def text(self, s):
        subprocess.run(self.tmux + ["send-keys", "-l", s], check=True,
                       timeout=TIMEOUT)

    def screen(self):
        r = subprocess.run(self.tmux + ["capture-pane", "-p", "-S", "-500"],
                           check=True, timeout=TIMEOUT, capture_output=True)
        return r.stdout.decode("utf-8", "replace")

    def wait(self, pattern, timeout=TIMEOUT):
        """Wait until the screen matches the regex; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            m = re.search(pattern, screen, re.M)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched %r:\n%s"
                                     % (pattern, screen))
            time.sleep(0.05)

    def pid(self):
        """The pid of pop3c in the pane."""
        r = subprocess.run(self.tmux + ["display", "-p", "#{pane_pid}"],
                           check=True, timeout=TIMEOUT, capture_output=True)
        pid = int(r.stdout)
        # sh -> env -> pop3c: env execs pop3c, so it is the shell's child.
        return child_pid(pid)

    def title(self):
        r = subprocess.run(self.tmux + ["display", "-p", "#{pane_title}"],
                           check=True, timeout=TIMEOUT, capture_output=True)
        return r.stdout.decode("utf-8", "replace").strip()

    def count(self, pattern):
        return len(re.findall(pattern, self.screen(), re.M))

    def close(self):
        subprocess.run(self.tmux + ["kill-server"], timeout=TIMEOUT,
                       capture_output=True)
