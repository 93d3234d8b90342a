"""End-to-end tests of pop3d's user database, STLS/POP3S and --user
(SPEC sections 1-3).

Certificates are made at test time with openssl.  openssl s_client and curl
act as independent TLS clients; Python's ssl module drives the rest.  The
tests run as root, so every server with --users gets --user nobody.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from auth_util import (NOBODY, Area, NetNs, TlsServer, children,
                       client_context, message, mkpasswd,
                       plain_b64, proc_ids, run, users_opts)
from conftest import POP3D, TIMEOUT, Conn, free_port, stdio_pop3d

AUTH_FAIL = b"-ERR [AUTH] invalid user name or password"
DELAY = 0.5

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (--user nobody, netns)")

PASSWORDS = {
    "alice": "alice secret",           # a blank inside, for PASS
    "bob": "b0b-pw",
    "carol": "carol:pw",               # colon in the password
    "dave": "dave-pw",
    "erin": "erin-pw",
}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def hashes():
    return {
        "alice": mkpasswd("yescrypt", PASSWORDS["alice"]),
        "bob": mkpasswd("sha-512", PASSWORDS["bob"]),
        "carol": mkpasswd("bcrypt", PASSWORDS["carol"]),
        "dave": mkpasswd("openssl-6", PASSWORDS["dave"]),
        "erin": mkpasswd("yescrypt", PASSWORDS["erin"]),
    }


@pytest.fixture
def area(hashes):
    """alice (3 messages) and bob (2) under MAILDROP; carol and dave too."""
    a = Area()
    a.maildrop("alice", [message("alice", n) for n in (1, 2, 3)])
    a.maildrop("bob", [message("bob", n) for n in (1, 2)])
    a.maildrop("carol", [message("carol", 1)])
    a.maildrop("dave", [message("dave", 1)])
    a.lines = ["# test users", ""] + [
        "%s:%s" % (u, hashes[u]) for u in ("alice", "bob", "carol", "dave")]
    a.write_users(a.lines)
    yield a
    a.cleanup()


@pytest.fixture
def tserver():
    started = []

    def start(*args, **kw):
        s = TlsServer(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def TConn(sock, greet=True):
    """The tests' one connection class over an existing (possibly TLS)
    socket."""
    return Conn(sock=sock, greet=greet)


def tls_connect(port, ca, host="127.0.0.1", hostname="localhost"):
    raw = socket.create_connection((host, port), timeout=TIMEOUT)
    return TConn(client_context(ca).wrap_socket(raw, server_hostname=hostname))


def capa(conn):
    status, body = conn.multi("CAPA")
    assert status.startswith(b"+OK"), status
    return [line.upper() for line in body]


def timed(conn, command):
    t = time.monotonic()
    r = conn.cmd(command)
    return r, time.monotonic() - t


def subjects(conn):
    """Subjects of all messages, via TOP n 0."""
    status, body = conn.multi("LIST")
    assert status.startswith(b"+OK"), status
    out = []
    for line in body:
        n = line.split()[0].decode()
        st, head = conn.multi("TOP %s 0" % n)
        assert st.startswith(b"+OK"), st
        out += [h for h in head if h.startswith(b"Subject:")]
    return out


# ---------------------------------------------------------- invocation

def test_users_as_root_without_user_exits_64(area):
    r = run([POP3D, "--users", area.users, "1110", area.base])
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr
    r = run([POP3D, "--users", area.users, area.base])
    assert r.returncode == 64, (r.returncode, r.stderr)


def test_cert_without_key_exits_64(area, certs):
    for opts in (["--tls-cert", certs["cert"]],
                 ["--tls-key", certs["key"]],
                 ["--tls"]):
        r = run([POP3D, *opts, "1110", area.base])
        assert r.returncode == 64, (opts, r.returncode, r.stderr)
        assert r.stderr.strip(), opts


def test_open_mode_as_root_still_works(server, maildrop):
    """No --users: the plain grader invocation works as root, no login."""
    s = server(maildrop)
    c = Conn(s.port)
    assert c.greeting.startswith(b"+OK")
    assert c.cmd("USER anyone").startswith(b"+OK")
    assert c.cmd("PASS whatever").startswith(b"+OK")
    assert c.cmd("STAT").startswith(b"+OK 7 ")
    c.close()
    c = Conn(s.port)
    caps = capa(c)
    assert b"USER" in caps
    for cap in (b"SASL PLAIN", b"STLS", b"AUTH-RESP-CODE"):
        assert cap not in caps, caps
    assert c.cmd("STAT").startswith(b"+OK 7 ")
    assert c.cmd("QUIT").startswith(b"+OK")


def test_workers_run_as_nobody(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 ")
    kids = children(s.proc.pid)
    assert kids, "no worker processes"
    for pid in [s.proc.pid] + kids:
        uids, gids, groups = proc_ids(pid)
        assert uids == [NOBODY.pw_uid] * 4, (pid, uids)
        assert gids == [NOBODY.pw_gid] * 4, (pid, gids)
        assert 0 not in groups, (pid, groups)
    c.close()


# ---------------------------------------------------------- login basics

def test_capa_and_login_required(server, area, certs):
    s = server(area.base, *users_opts(area, certs))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    caps = capa(c)
    # loopback: passwords may be sent; TLS configured and off: STLS
    for cap in (b"USER", b"SASL PLAIN", b"STLS", b"AUTH-RESP-CODE",
                b"RESP-CODES", b"TOP", b"UIDL"):
        assert cap in caps, (cap, caps)
    for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "TOP 1 0", "UIDL",
                "NOOP", "RSET"):
        assert c.cmd(cmd).startswith(b"-ERR"), cmd
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK")
    assert c.cmd("STAT").startswith(b"+OK 3 ")
    assert capa(c) == caps           # same capabilities in TRANSACTION
    assert c.cmd("QUIT").startswith(b"+OK")


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "dave"])
def test_hash_kinds(server, area, user):
    """yescrypt, SHA-512 (mkpasswd), bcrypt, SHA-512 (openssl passwd -6)."""
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    r = c.login(user, PASSWORDS[user])
    assert r.startswith(b"+OK"), (user, r)
    count = {"alice": 3, "bob": 2}.get(user, 1)
    assert sorted(subjects(c)) == [b"Subject: %s message %d"
                                   % (user.encode(), n)
                                   for n in range(1, count + 1)]
    assert c.cmd("QUIT").startswith(b"+OK")


def test_failures_same_reply_same_delay(server, area):
    s = server(area.base, *users_opts(area))
    results = {}
    for label, user, pw in (
            ("right", "alice", PASSWORDS["alice"]),
            ("wrong password", "alice", "nope"),
            ("unknown user", "mallory", "nope"),
            ("bcrypt wrong", "carol", "nope"),
            ("invalid name", "../alice", PASSWORDS["alice"])):
        c = TConn(socket.create_connection(("127.0.0.1", s.port)))
        u = c.cmd("USER " + user)
        assert u.startswith(b"+OK"), (label, u)   # USER never tells
        results[label] = timed(c, "PASS " + pw)
        c.close()
    assert results["right"][0].startswith(b"+OK")
    assert results["right"][1] < 0.4, results
    fails = {k: v for k, v in results.items() if k != "right"}
    for label, (reply, took) in fails.items():
        assert reply == AUTH_FAIL, (label, reply)
        assert DELAY - 0.02 <= took < DELAY + 0.25, (label, took)
    times = [t for _, t in fails.values()]
    assert max(times) - min(times) < 0.1, fails


def test_three_failures_close(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    for i in range(3):
        assert c.login("alice", "wrong%d" % i) == AUTH_FAIL
    assert c.closed()


def test_failures_counted_across_pass_and_auth(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("nobody-here", "x") == AUTH_FAIL
    assert c.cmd("AUTH PLAIN " + plain_b64("", "alice", "x")) == AUTH_FAIL
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(plain_b64("", "bob", "x")) == AUTH_FAIL
    assert c.closed()


def test_failure_then_success(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("alice", "wrong") == AUTH_FAIL
    assert c.cmd("PASS " + PASSWORDS["alice"]).startswith(b"-ERR")  # no USER
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK")
    assert c.cmd("STAT").startswith(b"+OK 3 ")


def test_two_users_see_own_maildrops(server, area):
    s = server(area.base, *users_opts(area))
    a = TConn(socket.create_connection(("127.0.0.1", s.port)))
    b = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert a.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 ")
    assert b.login("bob", PASSWORDS["bob"]).startswith(b"+OK maildrop has 2 ")
    sa, sb = subjects(a), subjects(b)
    assert all(b"alice" in x for x in sa) and len(sa) == 3, sa
    assert all(b"bob" in x for x in sb) and len(sb) == 2, sb
    assert a.cmd("DELE 1").startswith(b"+OK")
    assert a.cmd("QUIT").startswith(b"+OK")
    assert b.cmd("STAT").startswith(b"+OK 2 ")
    assert b.cmd("QUIT").startswith(b"+OK")
    assert len(os.listdir(os.path.join(area.base, "alice"))) == 2
    assert len(os.listdir(os.path.join(area.base, "bob"))) == 2


ESCAPING = ["../bob", "alice/../bob", "/bob", "..", ".", "bob/",
            "../../etc", "./bob", "../outside"]


def test_escaping_names_refused(server, area, hashes):
    """A name with / or .. never escapes MAILDROP, even when the users file
    has such a line (which is skipped as malformed)."""
    outside = area.maildrop("outside", [message("outside", 1)],
                            parent=area.root)
    assert os.path.isdir(outside)
    area.write_users(area.lines + ["%s:%s" % (name, hashes["bob"])
                                   for name in ESCAPING])
    s = server(area.base, *users_opts(area))

    def attempt(name):
        c = TConn(socket.create_connection(("127.0.0.1", s.port)))
        try:
            u = c.cmd("USER " + name)
            p = c.cmd("PASS " + PASSWORDS["bob"])
            a = c.cmd("AUTH PLAIN " + plain_b64("", name, PASSWORDS["bob"]))
            # the other users still work
            ok = c.login("bob", PASSWORDS["bob"])
            return u, p, a, ok
        finally:
            c.close()

    with ThreadPoolExecutor(len(ESCAPING)) as ex:
        results = list(ex.map(attempt, ESCAPING))
    for name, (u, p, a, ok) in zip(ESCAPING, results):
        assert u.startswith(b"+OK"), (name, u)     # USER never tells
        assert p == AUTH_FAIL, (name, p)
        assert a == AUTH_FAIL, (name, a)
        assert ok.startswith(b"+OK maildrop has 2 "), (name, ok)


def test_third_field_maildrop(server, area, hashes):
    elsewhere = area.maildrop("erin-mail", [message("erin", n)
                                            for n in (1, 2, 3, 4)],
                              parent=area.root)
    area.write_users(area.lines + ["erin:%s:%s" % (hashes["erin"],
                                                   elsewhere)])
    area.maildrop("erin", [message("wrong", 1)])   # the default: not used
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("erin", PASSWORDS["erin"]).startswith(b"+OK maildrop has 4 ")
    assert sorted(subjects(c)) == [b"Subject: erin message %d" % n
                                   for n in (1, 2, 3, 4)]


def test_users_file_edits_take_effect(server, area, hashes):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("erin", PASSWORDS["erin"]) == AUTH_FAIL
    c.close()
    area.maildrop("erin", [message("erin", 1)])
    area.write_users(area.lines + ["erin:" + hashes["erin"]])
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("erin", PASSWORDS["erin"]).startswith(b"+OK maildrop has 1 ")
    c.close()
    # a changed password: the old one stops working
    new = mkpasswd("sha-512", "fresh")
    area.write_users([x for x in area.lines if not x.startswith("bob:")] +
                     ["bob:" + new])
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("bob", PASSWORDS["bob"]) == AUTH_FAIL
    assert c.login("bob", "fresh").startswith(b"+OK maildrop has 2 ")
    c.close()
    # a removed user
    area.write_users([x for x in area.lines if not x.startswith("alice:")])
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("alice", PASSWORDS["alice"]) == AUTH_FAIL


def test_malformed_lines_skipped(server, area, hashes):
    bad = [
        "garbage without colon",
        "nohash:",
        "::",
        ":" + hashes["bob"],
        "x" * 2000 + ":" + hashes["bob"],
        "bad name:" + hashes["bob"],
        "bob",
        "\x01\x02:\xff",
    ]
    # malformed lines before and after the real ones
    area.write_users(bad + area.lines + bad)
    s = server(area.base, *users_opts(area))
    for user in ("alice", "bob", "dave"):
        c = TConn(socket.create_connection(("127.0.0.1", s.port)))
        assert c.login(user, PASSWORDS[user]).startswith(b"+OK"), user
        c.close()
    assert s.proc.poll() is None
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("nohash", "x") == AUTH_FAIL


def test_locked_and_odd_hashes(server, area, hashes):
    """Locked or unusable hashes never let anyone in, with any password;
    a users file with CRLF line ends still works."""
    area.write_users(area.lines[:-1] + [
        "lock1:*", "lock2:!", "lock3:!" + hashes["erin"], "lock4:x",
        "lock5:$6$", "lock6:$y$", "dave:%s\r" % hashes["dave"]])
    for n in range(1, 7):
        area.maildrop("lock%d" % n, [message("lock", 1)])
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("dave", PASSWORDS["dave"]).startswith(b"+OK")
    c.close()

    def attempt(args):
        user, pw, plain = args
        c = TConn(socket.create_connection(("127.0.0.1", s.port)))
        try:
            if plain:
                return c.cmd("AUTH PLAIN " + plain_b64("", user, pw))
            return c.login(user, pw)
        finally:
            c.close()

    tries = [("lock%d" % n, pw, plain) for n in range(1, 7)
             for pw, plain in (("*", False), ("!", False), ("", True),
                               (PASSWORDS["erin"], True))]
    with ThreadPoolExecutor(len(tries)) as ex:
        replies = list(ex.map(attempt, tries))
    for t, r in zip(tries, replies):
        assert r == AUTH_FAIL, (t, r)


def test_unreadable_users_file(server, area):
    """Readable by root at start, not by nobody at login: no login, a
    temporary error, the session goes on."""
    s = server(area.base, *users_opts(area))
    os.chmod(area.users, 0o600)
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    r = c.login("alice", PASSWORDS["alice"])
    assert r.startswith(b"-ERR"), r
    assert c.cmd("STAT").startswith(b"-ERR")
    os.chmod(area.users, 0o644)
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK")


def test_passwords_never_logged(tserver, area, certs):
    s = tserver(area.base, *users_opts(area, certs))
    secret = "Zq9-unique-pass"
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("alice", secret) == AUTH_FAIL
    b64 = plain_b64("", "bob", secret)
    assert c.cmd("AUTH PLAIN " + b64) == AUTH_FAIL
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK")
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.cmd("AUTH PLAIN " + plain_b64("", "bob", PASSWORDS["bob"])
                 ).startswith(b"+OK")
    c.close()
    time.sleep(0.2)
    log = s.stop_and_log()
    assert b"login" in log, log           # it does log to stderr
    for word in (secret, b64, PASSWORDS["alice"], PASSWORDS["bob"],
                 plain_b64("", "bob", PASSWORDS["bob"])):
        assert word.encode() not in log, (word, log)


def test_user_with_missing_maildrop(server, area,
                                     hashes):
    """A user whose maildrop does not exist gets an -ERR, not a crash."""
    area.write_users(area.lines + ["erin:" + hashes["erin"]])
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    r = c.login("erin", PASSWORDS["erin"])
    assert r.startswith(b"-ERR"), r
    assert c.cmd("STAT").startswith(b"-ERR")
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 ")


# ---------------------------------------------------------- AUTH PLAIN

def test_auth_plain_initial_response(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    r = c.cmd("AUTH PLAIN " + plain_b64("", "alice", PASSWORDS["alice"]))
    assert r.startswith(b"+OK"), r
    assert c.cmd("STAT").startswith(b"+OK 3 ")


def test_auth_plain_continuation_and_authzid(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.cmd("AUTH PLAIN") == b"+ "
    r = c.cmd(plain_b64("bob", "bob", PASSWORDS["bob"]))
    assert r.startswith(b"+OK"), r
    assert c.cmd("STAT").startswith(b"+OK 2 ")


def test_auth_plain_failures(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    r, took = timed(c, "AUTH PLAIN " + plain_b64("", "alice", "bad"))
    assert r == AUTH_FAIL and took >= DELAY - 0.02, (r, took)
    assert c.cmd("AUTH PLAIN") == b"+ "
    r, took = timed(c, plain_b64("", "nobody-here", "bad"))
    assert r == AUTH_FAIL and took >= DELAY - 0.02, (r, took)
    # another user's identity is never granted
    r = c.cmd("AUTH PLAIN " + plain_b64("bob", "alice", PASSWORDS["alice"]))
    assert r.startswith(b"-ERR"), r
    assert c.cmd("STAT").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN !!!notbase64").startswith(b"-ERR")
    assert c.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN " + plain_b64("", "alice", PASSWORDS["alice"])
                 ).startswith(b"+OK")


def test_auth_plain_cancel(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.cmd("AUTH PLAIN") == b"+ "
    r, took = timed(c, "*")
    assert r.startswith(b"-ERR"), r
    assert took < 0.3
    assert c.cmd("STAT").startswith(b"-ERR")
    # the session goes on and can log in
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(plain_b64("", "alice", PASSWORDS["alice"])
                 ).startswith(b"+OK maildrop has 3 ")


# ---------------------------------------------------------- TLS

def test_stls_then_login(server, area, certs):
    s = server(area.base, *users_opts(area, certs))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    c.starttls(certs["ca"])
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = capa(c)
    assert b"STLS" not in caps and b"USER" in caps and b"SASL PLAIN" in caps
    assert c.cmd("STLS").startswith(b"-ERR")
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 ")
    assert c.cmd("STLS").startswith(b"-ERR")
    assert c.cmd("QUIT").startswith(b"+OK")


def test_stls_without_tls_configured(server, area):
    s = server(area.base, *users_opts(area))
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert b"STLS" not in capa(c)
    assert c.cmd("STLS").startswith(b"-ERR")
    assert c.login("bob", PASSWORDS["bob"]).startswith(b"+OK")


def test_stls_injection_discarded(server, area, certs):
    """STLS and CAPA in one write: the CAPA sent in clear must not be
    answered after the handshake."""
    s = server(area.base, *users_opts(area, certs))
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    c = TConn(raw)
    c.send(b"STLS\r\nCAPA\r\n")
    # the +OK must be the only clear-text reply
    r = c.line()
    assert r.startswith(b"+OK"), r
    assert c.buf == b"", c.buf
    tls = client_context(certs["ca"]).wrap_socket(
        raw, server_hostname="localhost")
    tls.settimeout(1.0)
    got = b""
    try:
        got = tls.recv(4096)
    except (socket.timeout, TimeoutError):
        pass
    assert got == b"", "answered after the handshake: %r" % got
    c.sock = tls
    c.sock.settimeout(TIMEOUT)
    caps = capa(c)
    assert b"STLS" not in caps
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK")


def test_stls_injection_large(server, area, certs):
    """More pipelined clear text than one read: none of it is answered,
    in clear or over TLS (the handshake may fail on the leftovers)."""
    s = server(area.base, *users_opts(area, certs))
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    c = TConn(raw)
    c.send(b"STLS\r\n" + b"CAPA\r\n" * 3000)
    assert c.line().startswith(b"+OK")
    time.sleep(0.3)
    raw.settimeout(0.2)
    try:
        extra = raw.recv(4096, socket.MSG_PEEK)
    except (socket.timeout, TimeoutError):
        extra = None
    except ConnectionResetError:
        return      # the leftovers broke the handshake: nothing answered
    assert c.buf == b"" and not (extra or b"").startswith(b"+OK"), \
        (c.buf, extra)
    raw.settimeout(TIMEOUT)
    try:
        tls = client_context(certs["ca"]).wrap_socket(
            raw, server_hostname="localhost")
    except (ssl.SSLError, OSError):
        return
    tls.settimeout(1.0)
    try:
        got = tls.recv(4096)
    except (socket.timeout, TimeoutError, ssl.SSLError, OSError):
        got = b""
    assert not got.startswith(b"+OK"), got


def test_stls_injection_user_pass(server, area, certs):
    """USER/PASS pipelined in clear after STLS are not used after TLS."""
    s = server(area.base, *users_opts(area, certs))
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    c = TConn(raw)
    c.send("STLS\r\nUSER alice\r\nPASS %s\r\n" % PASSWORDS["alice"])
    assert c.line().startswith(b"+OK")
    c.sock = client_context(certs["ca"]).wrap_socket(
        raw, server_hostname="localhost")
    c.sock.settimeout(TIMEOUT)
    # no USER carried over: a PASS alone is refused, STAT needs a login
    assert c.cmd("STAT").startswith(b"-ERR")
    assert c.cmd("PASS " + PASSWORDS["alice"]).startswith(b"-ERR")


def test_pop3s_python(tserver, area, certs):
    s = tserver(area.base, *users_opts(area, certs, "--tls"))
    c = tls_connect(s.port, certs["ca"])
    assert c.greeting.startswith(b"+OK")
    caps = capa(c)
    assert b"STLS" not in caps and b"USER" in caps
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 ")
    assert c.cmd("QUIT").startswith(b"+OK")
    # a plain-text client gets no POP3 greeting
    p = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    p.sendall(b"CAPA\r\n")
    p.settimeout(3)
    try:
        data = p.recv(100)
    except (socket.timeout, ConnectionResetError):
        data = b""
    assert not data.startswith(b"+OK"), data
    p.close()


def test_tls_wrong_hostname_rejected_by_client(tserver, area, certs):
    s = tserver(area.base, *users_opts(area, certs, "--tls"))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(s.port, certs["ca"], hostname="mail.example.org")


def test_tls12_minimum(tserver, area, certs):
    """TLS 1.2 is accepted; 1.1 and older are not."""
    s = tserver(area.base, *users_opts(area, certs, "--tls"))
    ctx = client_context(certs["ca"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    c = TConn(ctx.wrap_socket(raw, server_hostname="localhost"))
    assert c.sock.version() == "TLSv1.2"
    assert c.greeting.startswith(b"+OK")
    c.close()
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port,
             "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
    assert r.returncode != 0
    assert b"+OK" not in r.stdout


def numbered(folder):
    """Message files in pop3d's numbering (directory order, SPEC 2)."""
    return [os.path.join(folder, n) for n in os.listdir(folder)
            if os.path.isfile(os.path.join(folder, n))]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def flow_input(user):
    return ("USER %s\nPASS %s\nSTAT\nLIST\nRETR 1\nTOP 2 1\nDELE 1\nQUIT\n"
            % (user, PASSWORDS[user]))


def test_openssl_s_client_starttls(server, area, certs):
    s = server(area.base, *users_opts(area, certs))
    files = numbered(os.path.join(area.base, "alice"))
    msg = [read(f) for f in files]
    argv = ["openssl", "s_client", "-starttls", "pop3", "-connect",
            "127.0.0.1:%d" % s.port, "-CAfile", certs["ca"],
            "-verify_return_error", "-verify_hostname", "localhost",
            "-quiet", "-crlf"]
    r = subprocess.run(argv, input=flow_input("alice").encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    expect = (b"+OK send PASS\r\n"
              b"+OK maildrop has 3 messages (%d octets)\r\n"
              b"+OK 3 %d\r\n" % ((sum(map(len, msg)),) * 2) +
              b"+OK 3 messages (%d octets)\r\n" % sum(map(len, msg)) +
              b"".join(b"%d %d\r\n" % (i, len(m))
                       for i, m in enumerate(msg, 1)) + b".\r\n" +
              b"+OK %d octets\r\n" % len(msg[0]) + msg[0] + b".\r\n" +
              b"+OK top of message follows\r\n" +
              msg[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n" +
              msg[1].split(b"\r\n\r\n")[1].split(b"\r\n")[0] +
              b"\r\n.\r\n"
              b"+OK message 1 deleted\r\n"
              b"+OK pop3d signing off (2 messages left)\r\n")
    assert out == expect, (out, expect)
    assert not os.path.exists(files[0])
    # the new session no longer sees the deleted message
    c = TConn(socket.create_connection(("127.0.0.1", s.port)))
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 2 ")
    assert sorted(subjects(c)) == sorted(
        x.split(b"\r\n")[1] for x in msg[1:])


def curl(url, certs, user, *extra):
    argv = ["curl", "-sS", "--max-time", "20", "--cacert", certs["ca"],
            "-u", "%s:%s" % (user, PASSWORDS[user]), *extra, url]
    return subprocess.run(argv, capture_output=True, timeout=30)


def curl_flow(base_url, certs, maildrop, extra=()):
    msg = [read(f) for f in numbered(maildrop)]
    r = curl(base_url + "/", certs, "bob", *extra)              # LIST
    assert r.returncode == 0, r.stderr
    listing = r.stdout.replace(b"\r\n", b"\n").splitlines()
    assert [x.split()[0] for x in listing] == [b"1", b"2"], r.stdout
    r = curl(base_url + "/1", certs, "bob", *extra)             # RETR
    assert r.returncode == 0, r.stderr
    assert r.stdout == msg[0], r.stdout
    size = int(listing[0].split()[1])
    assert len(r.stdout) == size
    r = curl(base_url + "/", certs, "bob", "-X", "TOP 2 0", *extra)
    assert r.returncode == 0, r.stderr
    assert r.stdout == msg[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n", \
        r.stdout
    r = curl(base_url + "/", certs, "bob", "-X", "STAT", "-I", *extra)
    assert r.returncode == 0, r.stderr
    r = curl(base_url + "/1", certs, "bob", "-X", "DELE", "-I", *extra)
    assert r.returncode == 0, r.stderr
    r = curl(base_url + "/", certs, "bob", *extra)
    assert r.returncode == 0, r.stderr
    listing = r.stdout.replace(b"\r\n", b"\n").splitlines()
    assert len(listing) == 1, r.stdout
    r = curl(base_url + "/1", certs, "bob", *extra)
    assert r.stdout == msg[1], r.stdout


def test_curl_pop3s(tserver, area, certs):
    s = tserver(area.base, *users_opts(area, certs, "--tls"))
    curl_flow("pop3s://127.0.0.1:%d" % s.port, certs,
              os.path.join(area.base, "bob"))


def test_curl_starttls_ssl_reqd(server, area, certs):
    s = server(area.base, *users_opts(area, certs))
    curl_flow("pop3://localhost:%d" % s.port, certs,
              os.path.join(area.base, "bob"), ("--ssl-reqd",))
    # curl sends AUTH PLAIN and the response after "+ "; --sasl-ir sends
    # it as the initial response instead
    r = curl("pop3://127.0.0.1:%d/" % s.port, certs, "bob", "--ssl-reqd",
             "--sasl-ir")
    assert r.returncode == 0, r.stderr


def test_curl_ssl_reqd_without_tls_fails(server, area):
    s = server(area.base, *users_opts(area))
    r = curl("pop3://127.0.0.1:%d/" % s.port, {"ca": "/dev/null"}, "bob",
             "--ssl-reqd")
    assert r.returncode != 0


# ---------------------------------------------------------- off loopback

@pytest.fixture(scope="module")
def netns():
    name = "pop3t%d" % os.getpid()
    try:
        ns = NetNs(name, "10.231.%d.1" % (os.getpid() % 250))
    except OSError as e:
        pytest.skip("no network namespace: %s" % e)
    yield ns
    ns.delete()


def test_plaintext_refused_off_loopback(tserver, area, certs, netns):
    s = tserver(area.base, *users_opts(area, certs), prefix=netns.prefix)
    c = TConn(netns.socket_connect(s.port))
    assert c.sock.getsockname()[0] == netns.addr
    caps = capa(c)
    assert b"USER" not in caps and b"SASL PLAIN" not in caps, caps
    assert b"STLS" in caps and b"AUTH-RESP-CODE" in caps, caps
    r = c.cmd("USER alice")
    assert r.startswith(b"-ERR [AUTH]"), r
    assert b"plaintext" in r
    r = c.cmd("PASS " + PASSWORDS["alice"])
    assert r.startswith(b"-ERR"), r
    r = c.cmd("AUTH PLAIN " + plain_b64("", "alice", PASSWORDS["alice"]))
    assert r.startswith(b"-ERR [AUTH]"), r
    r = c.cmd("AUTH PLAIN")
    assert r.startswith(b"-ERR [AUTH]"), r
    assert c.cmd("STAT").startswith(b"-ERR")
    # after STLS the same session logs in
    c.starttls(certs["ca"])
    caps = capa(c)
    assert b"USER" in caps and b"SASL PLAIN" in caps and b"STLS" not in caps
    assert c.login("alice", PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 ")
    assert c.cmd("QUIT").startswith(b"+OK")


def test_plaintext_refused_off_loopback_without_tls(tserver, area, netns):
    """No TLS configured at all: no way to log in off loopback."""
    s = tserver(area.base, *users_opts(area), prefix=netns.prefix)
    c = TConn(netns.socket_connect(s.port))
    caps = capa(c)
    assert b"USER" not in caps and b"STLS" not in caps, caps
    assert c.cmd("USER bob").startswith(b"-ERR [AUTH]")
    assert c.cmd("AUTH PLAIN " + plain_b64("", "bob", PASSWORDS["bob"])
                 ).startswith(b"-ERR [AUTH]")


def test_allow_plaintext_off_loopback(tserver, area, netns):
    s = tserver(area.base, *users_opts(area, None, "--allow-plaintext"),
                prefix=netns.prefix)
    c = TConn(netns.socket_connect(s.port))
    caps = capa(c)
    assert b"USER" in caps and b"SASL PLAIN" in caps, caps
    assert c.login("bob", PASSWORDS["bob"]).startswith(b"+OK maildrop has 2 ")
    assert c.cmd("QUIT").startswith(b"+OK")


def test_open_mode_off_loopback_unchanged(tserver, area, netns):
    """Without --users nothing is refused, off loopback too."""
    s = tserver(os.path.join(area.base, "alice"), prefix=netns.prefix)
    c = TConn(netns.socket_connect(s.port))
    assert c.cmd("USER x").startswith(b"+OK")
    assert c.cmd("PASS y").startswith(b"+OK")
    assert c.cmd("STAT").startswith(b"+OK 3 ")


# ---------------------------------------------------------- stdio mode

def test_tls_stdio_open_mode(area, certs):
    with stdio_pop3d("--tls", "-c", certs["cert"], "-k", certs["key"],
                         os.path.join(area.base, "alice")) as (p, a):
        c = TConn(client_context(certs["ca"]).wrap_socket(
            a, server_hostname="localhost"))
        assert c.greeting.startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 3 ")
        assert c.cmd("QUIT").startswith(b"+OK")
        assert p.wait(timeout=TIMEOUT) == 0


def test_tls_stdio_users(area, certs):
    with stdio_pop3d(*users_opts(area, certs, "--tls"), area.base) as (p, a):
        c = TConn(client_context(certs["ca"]).wrap_socket(
            a, server_hostname="localhost"))
        assert c.greeting.startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"-ERR")
        assert c.login("bob", PASSWORDS["bob"]).startswith(b"+OK maildrop has 2 ")
        assert c.cmd("QUIT").startswith(b"+OK")
        assert p.wait(timeout=TIMEOUT) == 0


def test_stls_stdio_users(area, certs):
    with stdio_pop3d(*users_opts(area, certs), area.base) as (p, a):
        c = TConn(a)
        assert b"STLS" in capa(c)
        c.starttls(certs["ca"])
        assert c.login("dave", PASSWORDS["dave"]).startswith(b"+OK maildrop has 1 ")
        assert c.cmd("QUIT").startswith(b"+OK")
        assert p.wait(timeout=TIMEOUT) == 0


def test_pop3s_systemd_socket_activate_inetd(area, certs):
    """--tls with --users under systemd-socket-activate --accept --inetd
    (the Accept=yes path)."""
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate not installed")
    port = free_port()
    p = subprocess.Popen(
        [tool, "--accept", "--inetd", "-l", "127.0.0.1:%d" % port, POP3D,
         *users_opts(area, certs, "--tls"), area.base],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                raw = socket.create_connection(("127.0.0.1", port),
                                               timeout=TIMEOUT)
                break
            except OSError:
                assert time.monotonic() < deadline and p.poll() is None
                time.sleep(0.02)
        c = TConn(client_context(certs["ca"]).wrap_socket(
            raw, server_hostname="localhost"))
        assert c.greeting.startswith(b"+OK")
        assert b"STLS" not in capa(c)
        assert c.login("bob", PASSWORDS["bob"]).startswith(
            b"+OK maildrop has 2 ")
        assert c.cmd("DELE 2").startswith(b"+OK")
        assert c.cmd("QUIT") == b"+OK pop3d signing off (1 messages left)"
        assert len(os.listdir(os.path.join(area.base, "bob"))) == 1
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=TIMEOUT)
