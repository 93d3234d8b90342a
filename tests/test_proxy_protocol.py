"""The PROXY protocol in pop3d (--proxy-from), over real loopback sockets.

A listed source must send a v1 or v2 header before anything else; the
address in it becomes the session's peer (logs, --max-per-source, the
plaintext-password rule).  A header from any other source, a malformed
one, a LOCAL/UNKNOWN one or none within the deadline: the connection is
closed with one log line and nothing is read as POP3.  The proxy sends
from 127.0.0.1; "other" clients connect from 127.0.0.7.
"""
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from activation_util import Proc, need_tool, passenv_args, wire
from auth_util import Area, make_certs, message, mkpasswd
from conftest import POP3D, TIMEOUT, Conn, free_port
from proxy_util import (OTHER_ADDR, connect, proxied, read_to_close,
                        snapshot, start, tlv, v1, v2, v2_local, wait_log)


def first_file(maildrop):
    """The file RETR 1 serves (directory order, as the server numbers)."""
    names = [n for n in os.listdir(maildrop)
             if os.path.isfile(os.path.join(maildrop, n))]
    return os.path.join(maildrop, names[0])


def check_session(c, maildrop):
    """STAT answers, RETR 1 is byte-exact, QUIT ends it."""
    assert c.cmd("STAT").startswith(b"+OK ")
    with open(first_file(maildrop), "rb") as f:
        want = wire(f.read())
    status = c.cmd("RETR 1")
    assert status.startswith(b"+OK"), status
    got = b"".join(line + b"\r\n" for line in c.body())
    assert got == want
    assert c.cmd("QUIT").startswith(b"+OK")


@pytest.mark.parametrize("header,logged", [
    (v1(), "192.0.2.7:4711"),
    (v1("2001:db8::7", "2001:db8::1", 4712), "[2001:db8::7]:4712"),
    (v2(), "192.0.2.7:4711"),
    (v2("2001:db8::7", "2001:db8::1", 4712), "[2001:db8::7]:4712"),
    (v2(tlvs=tlv(0x01, b"pop3") + tlv(0x05, b"x" * 128), crc=True),
     "192.0.2.7:4711"),
], ids=["v1-tcp4", "v1-tcp6", "v2-tcp4", "v2-tcp6", "v2-tlvs-crc32c"])
def test_header_names_the_client(server, maildrop, header, logged):
    """Header and the first command in one segment: the header is taken,
    the command is not lost, and the log names the client in the header."""
    s = start(server, maildrop, "--proxy-from", "127.0.0.1")
    c = proxied(s.port, header, rest=b"NOOP\r\n")
    assert c.line().startswith(b"+OK"), "NOOP pipelined after the header"
    check_session(c, maildrop)
    c.close()
    log = wait_log(s, "session end: " + logged)
    assert b"session start: " + logged.encode() in log
    assert b"session start: 127.0.0.1" not in log


def test_header_split_into_single_bytes(server, maildrop):
    """A header that arrives one octet at a time is still read whole."""
    s = start(server, maildrop, "--proxy-from", "127.0.0.0/8")
    header = v2("203.0.113.5", sport=999)
    sock = connect(s.port)
    for i in range(len(header)):
        sock.sendall(header[i:i + 1])
        time.sleep(0.005)
    c = Conn(sock=sock)
    check_session(c, maildrop)
    c.close()
    wait_log(s, "session start: 203.0.113.5:999")


@pytest.mark.parametrize("data,why", [
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 4711\r\n", "bad PROXY header"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 110\n", "bad PROXY header"),
    (b"PROXY TCP4 " + b"9" * 200 + b"\r\n", "longer than 107"),
    (b"USER alice\r\n", "not a PROXY header"),
    (v2(crc=True, bad_crc=True), "CRC32C mismatch"),
    (v2()[:12] + b"\x21\x11\xff\xff", "too long"),
    (v2()[:12] + b"\x21\x31\x00\x0c" + bytes(12), "not TCP"),
    (v2_local(), "without a client (LOCAL)"),
    (b"PROXY UNKNOWN\r\n", "without a client (UNKNOWN)"),
], ids=["v1-fields", "v1-bare-lf", "v1-too-long", "pop3-instead",
        "v2-crc", "v2-64k", "v2-unix", "v2-local", "v1-unknown"])
def test_bad_header_from_proxy_refused(server, maildrop, data, why):
    """Closed without a greeting, one log line, the DELE and QUIT sent
    after it never run."""
    s = start(server, maildrop, "--proxy-from", "127.0.0.1")
    before = snapshot(maildrop)
    sock = connect(s.port)
    sock.sendall(data + b"DELE 1\r\nQUIT\r\n")
    assert read_to_close(sock) == b""
    sock.close()
    log = wait_log(s, why)
    assert b"session start" not in log
    assert snapshot(maildrop) == before


def test_missing_header_deadline(server, maildrop):
    """No header: closed after the deadline, at most 10 s even with a long
    idle timeout, and no sooner than the idle timeout when shorter."""
    short = start(server, maildrop, "--proxy-from", "127.0.0.1",
                  "--timeout", "2")
    long = start(server, maildrop, "--proxy-from", "127.0.0.1")
    results = {}

    def wait_close(name, port):
        sock = connect(port, timeout=60)
        t0 = time.monotonic()
        got = read_to_close(sock, timeout=60)
        results[name] = (got, time.monotonic() - t0)
        sock.close()

    threads = [threading.Thread(target=wait_close, args=a)
               for a in (("short", short.port), ("long", long.port))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert results["short"][0] == b"" and results["long"][0] == b""
    assert 1.9 <= results["short"][1] < 9, results
    assert 9.9 <= results["long"][1] < 40, results
    wait_log(short, "no PROXY header within 2 s")
    wait_log(long, "no PROXY header within 10 s")


def test_unlisted_source_with_header_refused(server, maildrop):
    """From a source not in --proxy-from a header is refused, whether it
    comes at once or after the greeting, v1 or v2; nothing after it runs
    and the address in it is never used."""
    s = start(server, maildrop, "--proxy-from", "127.0.0.1")
    before = snapshot(maildrop)
    # At once: closed before or right after the greeting.
    for header in (v1(), v2()):
        sock = connect(s.port, OTHER_ADDR)
        sock.sendall(header + b"DELE 1\r\nQUIT\r\n")
        got = read_to_close(sock)
        assert got in (b"", b"+OK pop3d ready\r\n"), got
        sock.close()
    # After the greeting: no reply at all.
    for header in (v1(), v2()):
        c = Conn(sock=connect(s.port, OTHER_ADDR))
        c.send(header + b"DELE 1\r\nQUIT\r\n")
        assert read_to_close(c.sock) == b""
        c.close()
    log = wait_log(s, "not in --proxy-from")
    deadline = time.monotonic() + TIMEOUT
    while log.count(b"not in --proxy-from") < 4:
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
        log = s.output()
    assert b"192.0.2.7" not in log
    assert snapshot(maildrop) == before


def test_unlisted_source_without_header_served(server, maildrop):
    """Only the listed sources must send a header: others are served as
    before, under their own address."""
    s = start(server, maildrop, "--proxy-from", "192.0.2.0/24,::1")
    c = Conn(sock=connect(s.port, OTHER_ADDR))
    check_session(c, maildrop)
    c.close()
    wait_log(s, "session start: 127.0.0.7:")


def test_without_proxy_from_nothing_changes(server, maildrop):
    """Without --proxy-from a PROXY line is just an unknown command."""
    s = server(maildrop)
    c = Conn(s.port)
    assert c.cmd(v1().decode().rstrip("\r\n")).startswith(b"-ERR")
    check_session(c, maildrop)
    c.close()
    assert b"PROXY" not in s.output()


@pytest.fixture
def area():
    a = Area()
    a.maildrop("alice", [message("alice", 1)])
    a.write_users(["alice:" + mkpasswd("sha-512", "wonderland")])
    yield a
    a.cleanup()


def test_plaintext_rule_follows_the_header(server, area):
    """--users without TLS: a password is refused from a remote client
    named in the header, accepted when the v2 SSL TLV says the client used
    TLS to the proxy, and from a loopback client."""
    s = start(server, area.base, "--users", area.users, "--user", "nobody",
              "--proxy-from", "127.0.0.1")
    c = proxied(s.port, v2("192.0.2.7"))
    assert c.cmd("USER alice").startswith(b"-ERR [AUTH] plaintext")
    c.close()
    c = proxied(s.port, v2("192.0.2.7", ssl=0x00))
    assert c.cmd("USER alice").startswith(b"-ERR [AUTH] plaintext")
    c.close()
    for header in (v2("192.0.2.7", ssl=0x01), v1("127.0.0.9")):
        c = proxied(s.port, header)
        assert c.cmd("USER alice").startswith(b"+OK")
        assert c.cmd("PASS wonderland").startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 1 ")
        assert c.cmd("QUIT").startswith(b"+OK")
        c.close()


def test_per_source_limit_uses_the_header(server, maildrop):
    """--max-per-source counts the client named in the header, not the
    proxy: a second session for 192.0.2.7 is turned away while one for
    192.0.2.8 through the same proxy is served."""
    s = start(server, maildrop, "--proxy-from", "127.0.0.1",
              "--max-per-source", "1")
    first = proxied(s.port, v1("192.0.2.7", sport=1000))
    sock = connect(s.port)
    sock.sendall(v1("192.0.2.7", sport=1001))
    got = read_to_close(sock)
    assert got.startswith(b"-ERR [SYS/TEMP]"), got
    sock.close()
    other = proxied(s.port, v1("192.0.2.8", sport=1002))
    assert other.cmd("NOOP").startswith(b"+OK")
    assert first.cmd("NOOP").startswith(b"+OK")
    for c in (first, other):
        c.cmd("QUIT")
        c.close()
    wait_log(s, "192.0.2.7:1001: too many connections")


def test_tls_starts_after_the_header(server, maildrop, tmp_path):
    """POP3S behind a TCP proxy: the header, then the TLS handshake."""
    certs = make_certs(str(tmp_path))
    s = start(server, maildrop, "--proxy-from", "127.0.0.1", "--tls",
              "--tls-cert", certs["cert"], "--tls-key", certs["key"])
    sock = connect(s.port)
    sock.sendall(v2("198.51.100.20", sport=5555))
    ctx = ssl.create_default_context(cafile=certs["ca"])
    tsock = ctx.wrap_socket(sock, server_hostname="localhost")
    c = Conn(sock=tsock)
    check_session(c, maildrop)
    c.close()
    wait_log(s, "session start: 198.51.100.20:5555")


def inetd_session(maildrop, send, *opts):
    """pop3d on stdin/stdout as inetd starts it, on an accepted TCP
    connection from 127.0.0.1; returns what the client got and the exit
    status."""
    port = free_port()
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", port))
        lsock.listen(1)
        client = connect(port)
        conn, _ = lsock.accept()
    with conn:
        proc = subprocess.Popen([POP3D, *opts, str(maildrop)], stdin=conn,
                                stdout=conn, stderr=subprocess.DEVNULL)
    try:
        client.sendall(send)
        got = read_to_close(client)
        rc = proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()
    return got, rc


def test_stdio_mode_reads_the_header(maildrop):
    """inetd/xinetd/Accept=yes: the socket's peer is the proxy."""
    got, rc = inetd_session(maildrop, v1() + b"STAT\r\nQUIT\r\n",
                            "--proxy-from", "127.0.0.1")
    lines = got.split(b"\r\n")
    assert lines[0].startswith(b"+OK") and lines[1].startswith(b"+OK ")
    assert lines[2].startswith(b"+OK") and rc == 0
    before = snapshot(maildrop)
    got, rc = inetd_session(maildrop, b"PROXY TCP4 x\r\nDELE 1\r\nQUIT\r\n",
                            "--proxy-from", "127.0.0.1")
    assert got == b"" and rc == 0
    assert snapshot(maildrop) == before


def test_accept_no_reads_the_header(maildrop, tmp_path):
    """systemd Accept=no (the socket passed by systemd-socket-activate):
    the same step in the workers, a good header served, a bad one closed
    without a greeting."""
    port = free_port()
    act = Proc([need_tool("systemd-socket-activate"), *passenv_args(),
                "-l", "127.0.0.1:%d" % port, POP3D, "--proxy-from",
                "127.0.0.1", str(maildrop)], tmpdir=str(tmp_path))
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                sock = connect(port)
                break
            except OSError:
                assert time.monotonic() < deadline, act.output()
                time.sleep(0.05)
        sock.sendall(v2("192.0.2.44") + b"STAT\r\n")
        c = Conn(sock=sock)
        assert c.line().startswith(b"+OK ")
        check_session(c, maildrop)
        c.close()
        before = snapshot(maildrop)
        sock = connect(port)
        sock.sendall(b"PROXY TCP4 1.2.3.4\r\nDELE 1\r\nQUIT\r\n")
        assert read_to_close(sock) == b""
        sock.close()
        assert snapshot(maildrop) == before
    finally:
        act.stop()
    assert act.sanitizer_report() is None, act.sanitizer_report()


def test_sigterm_while_waiting_for_a_header(server, maildrop):
    """A listener stopped while a worker waits for a header ends at once
    and cleanly, not after the 10 s deadline."""
    s = start(server, maildrop, "--proxy-from", "127.0.0.1")
    sock = connect(s.port)
    # Best effort: let a worker take the connection before the signal.
    time.sleep(0.3)
    t0 = time.monotonic()
    rc = s.stop()
    took = time.monotonic() - t0
    sock.close()
    assert rc == 0
    assert took < 8, took


def timed_fail(c, password):
    """Seconds from sending PASS to its -ERR (the server's delay counts
    from the arrival, so this is never shorter than the delay)."""
    t0 = time.monotonic()
    c.send("PASS %s\r\n" % password)
    reply = c.line()
    took = time.monotonic() - t0
    assert reply.startswith(b"-ERR [AUTH]"), reply
    return took


def test_login_penalty_follows_the_header(server, area):
    """Failed logins wait longer per client address: the one named in the
    header, not the proxy's (which, on loopback, would have no penalty at
    all).  Another client behind the same proxy is not slowed."""
    s = start(server, area.base, "--users", area.users, "--user", "nobody",
              "--allow-plaintext", "--proxy-from", "127.0.0.1")
    a = proxied(s.port, v1("192.0.2.7", sport=2000))
    assert a.cmd("USER alice").startswith(b"+OK")
    assert timed_fail(a, "wrong1") >= 0.5
    assert a.cmd("USER alice").startswith(b"+OK")
    assert timed_fail(a, "wrong2") >= 2.0
    b = proxied(s.port, v2("192.0.2.8", sport=2001))
    assert b.cmd("USER alice").startswith(b"+OK")
    took = timed_fail(b, "wrong1")
    assert 0.5 <= took < 2.0, took
    a2 = proxied(s.port, v2("192.0.2.7", sport=2002))
    assert a2.cmd("USER alice").startswith(b"+OK")
    assert timed_fail(a2, "wrong3") >= 4.0
    for c in (a, b, a2):
        c.close()
