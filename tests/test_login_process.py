"""End-to-end tests of the login process (login.c): with --users the
client is parsed before its login by a process of its own, and its monitor
serves the session once a login is right (plain: on the connection; TLS:
through the login process, which relays).  Confinement of both is in
test_sandbox.py; this file checks that sessions behave as one process
would: pipelined input across the hand-over, a maildrop that cannot be
opened, a login process that dies, shutdown, a TLS client that stops
reading.
"""
import os
import signal
import socket
import time

import pytest

from auth_util import Area, TlsServer, message, mkpasswd, users_opts
from conftest import POP3D, TIMEOUT, Conn, stdio_pop3d
from server_util import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (--user nobody)")


@pytest.fixture
def area():
    a = Area()
    a.maildrop("alice", [message("alice", n) for n in (1, 2, 3)])
    a.maildrop("bob", [message("bob", 1)])
    a.write_users(["alice:" + mkpasswd("sha-512", "alice-pw"),
                   "bob:" + mkpasswd("sha-512", "bob-pw")])
    yield a
    a.cleanup()


opts = users_opts


def children(pid):
    """PIDs whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(d))
            except (OSError, IndexError):
                continue
    return out


def descendants(pid):
    out = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def replies(conn, n):
    return [conn.line() for _ in range(n)]


PIPELINED = "USER alice\r\nPASS alice-pw\r\nSTAT\r\nLIST 2\r\nNOOP\r\n"


def check_pipelined(c):
    r = replies(c, 5)
    assert r[0].startswith(b"+OK"), r
    assert r[1].startswith(b"+OK maildrop has 3 "), r
    assert r[2].startswith(b"+OK 3 "), r
    assert r[3].startswith(b"+OK 2 "), r
    assert r[4].startswith(b"+OK"), r
    assert c.cmd("QUIT").startswith(b"+OK")


def test_pipelined_across_the_login_plain(server, area):
    """Commands sent with PASS in one packet are served after the
    hand-over, in order, each once."""
    s = server(area.base, *opts(area))
    c = Conn(s.port)
    c.send(PIPELINED)
    check_pipelined(c)


def test_pipelined_across_the_login_stls(server, area, certs):
    s = server(area.base, *opts(area, certs))
    c = Conn(s.port)
    c.starttls(certs["ca"])
    c.send(PIPELINED)
    check_pipelined(c)


def test_pipelined_across_the_login_pop3s(area, certs):
    import ssl
    s = TlsServer(area.base, *opts(area, certs, "--tls"))
    try:
        ctx = ssl.create_default_context(cafile=certs["ca"])
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
        c = Conn(sock=ctx.wrap_socket(raw, server_hostname="localhost"))
        c.send(PIPELINED)
        check_pipelined(c)
    finally:
        s.stop()


def test_locked_maildrop_leaves_the_client_in_authorization(server, area):
    """With --exclusive a second login to a held maildrop gets [IN-USE]
    and may log in again once it is free: the monitor opens the maildrop
    before it answers the login process."""
    s = server(area.base, *opts(area, None, "--exclusive", "--lock-wait",
                                "1"))
    a = Conn(s.port)
    assert a.login("alice", "alice-pw").startswith(b"+OK maildrop has 3 ")
    b = Conn(s.port)
    assert b.login("alice", "alice-pw").startswith(b"-ERR [IN-USE]")
    assert b.cmd("STAT").startswith(b"-ERR")
    assert a.cmd("QUIT").startswith(b"+OK")
    assert b.login("alice", "alice-pw").startswith(b"+OK maildrop has 3 ")
    assert b.cmd("STAT").startswith(b"+OK 3 ")
    assert b.cmd("QUIT").startswith(b"+OK")


def test_login_process_killed(server, area):
    """A login process that dies ends its client's connection only; the
    listener and the next client go on."""
    s = server(area.base, *opts(area))
    c = Conn(s.port)
    assert c.cmd("USER alice").startswith(b"+OK")
    found = {}

    def look():
        for w in children(s.proc.pid):
            for k in children(w):
                found["k"] = k
        return "k" in found
    assert wait_for(look)
    os.kill(found["k"], signal.SIGKILL)
    assert c.closed()
    d = Conn(s.port)
    assert d.login("bob", "bob-pw").startswith(b"+OK maildrop has 1 ")
    assert d.cmd("QUIT").startswith(b"+OK")
    assert s.proc.poll() is None


@pytest.mark.parametrize("tls", [False, True])
def test_shutdown_ends_a_waiting_login(area, certs, tls):
    """SIGTERM to the listener while a client waits before its login (or
    in a relayed TLS session): every process ends promptly."""
    s = TlsServer(area.base, *opts(area, certs))
    try:
        c = Conn(s.port)
        if tls:
            c.starttls(certs["ca"])
            assert c.login("alice", "alice-pw").startswith(b"+OK")
        else:
            assert c.cmd("USER alice").startswith(b"+OK")
        assert wait_for(lambda: len(descendants(s.proc.pid)) >= 2)
        family = [s.proc.pid] + descendants(s.proc.pid)
        t = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=TIMEOUT)
        assert wait_for(lambda: not any(os.path.exists("/proc/%d" % p)
                                        for p in family))
        assert time.monotonic() - t < 8
        assert c.closed()
    finally:
        s.stop()


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_tls_client_that_stops_reading_is_dropped(server, area, certs):
    """A TLS client that asks for a large message and never reads it
    holds neither the relay nor the monitor past the write timeout."""
    big = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n"
    path = os.path.join(area.base, "alice", "04.eml")
    with open(path, "wb") as f:
        f.write(big * 200000)          # about 16 MB
    area.own(path)
    s = server(area.base, *opts(area, certs, "--timeout", "3"))
    c = Conn(s.port)
    c.starttls(certs["ca"])
    assert c.login("alice", "alice-pw").startswith(b"+OK maildrop has 4 ")
    sizes = c.scan_list()
    n = max(sizes, key=sizes.get)
    pairs = [(w, k) for w in children(s.proc.pid) for k in children(w)]
    assert len(pairs) == 1, pairs
    monitor, relay = pairs[0]
    c.send("RETR %d\r\n" % n)
    t = time.monotonic()
    # Meanwhile another client is served.
    d = Conn(s.port)
    assert d.login("bob", "bob-pw").startswith(b"+OK maildrop has 1 ")
    assert d.cmd("QUIT").startswith(b"+OK")
    assert wait_for(lambda: gone(monitor) and gone(relay), timeout=30)
    assert time.monotonic() - t < 25
    assert b"timeout" in s.output()
    c.sock.close()


def test_login_process_dies_with_its_monitor(server, area):
    """A monitor that is killed takes its login process along: nothing
    is left holding the client."""
    s = server(area.base, *opts(area))
    c = Conn(s.port)
    assert c.cmd("USER alice").startswith(b"+OK")
    pairs = []
    assert wait_for(lambda: pairs.extend(
        (w, k) for w in children(s.proc.pid) for k in children(w)) or pairs)
    monitor, login = pairs[0]
    os.kill(monitor, signal.SIGKILL)
    assert wait_for(lambda: gone(login))
    assert c.closed()
    d = Conn(s.port)
    assert d.login("bob", "bob-pw").startswith(b"+OK maildrop has 1 ")


@pytest.mark.parametrize("kind", ["socket", "pipes"])
def test_stdio_login(area, kind):
    """One process per connection (inetd, xinetd, Accept=yes): the
    connection goes to the login process and back to the monitor, on one
    socket as fds 0 and 1, or on two pipes."""
    import subprocess
    script = (b"USER alice\r\nPASS alice-pw\r\nSTAT\r\nRETR 1\r\n"
              b"QUIT\r\n")
    argv = [POP3D, *opts(area), area.base]
    if kind == "socket":
        a, b = socket.socketpair()
        p = subprocess.Popen(argv, stdin=b, stdout=b,
                             stderr=subprocess.PIPE)
        b.close()
        a.settimeout(TIMEOUT)
        a.sendall(script)
        out = b""
        while True:
            chunk = a.recv(65536)
            if not chunk:
                break
            out += chunk
        a.close()
        err = p.communicate(timeout=TIMEOUT)[1]
    else:
        p = subprocess.run(argv, input=script, capture_output=True,
                           timeout=TIMEOUT)
        out, err = p.stdout, p.stderr
    lines = out.split(b"\r\n")
    assert lines[0].startswith(b"+OK"), (out, err)
    assert lines[2].startswith(b"+OK maildrop has 3 "), (out, err)
    assert lines[3].startswith(b"+OK 3 "), (out, err)
    assert b"alice message" in out, out
    assert lines[-2].startswith(b"+OK"), (out, err)
    assert p.returncode == 0, err


def test_stdio_monitor_holds_no_client_fd(area):
    """Under inetd or xinetd the connection is fds 0, 1 and 2: before a
    login the monitor keeps none of them, only its login process does."""
    with stdio_pop3d(*opts(area), area.base, stderr_too=True) as (p, a):
        ino = p.conn_inode
        c = Conn(sock=a)
        assert c.cmd("USER alice").startswith(b"+OK")

        def holds(pid):
            out = []
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.stat("/proc/%d/fd/%s" % (pid, fd)).st_ino == ino:
                        out.append(int(fd))
                except OSError:
                    continue
            return out
        kids = []
        assert wait_for(lambda: kids.extend(children(p.pid)) or kids)
        assert holds(p.pid) == [], holds(p.pid)
        assert sorted(holds(kids[0])) == [0, 1, 2]
        assert c.cmd("PASS alice-pw").startswith(b"+OK maildrop has 3 ")
        assert wait_for(lambda: gone(kids[0]))
        assert sorted(holds(p.pid)) == [0, 1]
        assert c.cmd("QUIT").startswith(b"+OK")
        assert p.wait(timeout=TIMEOUT) == 0
