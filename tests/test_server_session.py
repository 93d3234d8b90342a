"""pop3d end to end: the RFC 1939 session on the open maildrop (SPEC 1-3).

The grader's flow, deletion semantics (DELE/RSET/QUIT, hang-up), numbering,
USER/PASS in open mode, CAPA, pipelining, the empty maildrop.
"""
import os
import re
import socket
import time

from server_util import (Pop, messages, pop3d, read, wire,  # noqa: F401
                         wire_top)


def total(path, names):
    return sum(len(wire(read(path, n))) for n in names)


def test_grader_flow(pop3d, maildrop):
    """pop3d PORT DIR; STAT, LIST, LIST n, RETR n, TOP n 0, TOP n big,
    DELE n, QUIT, and the next session no longer sees the message."""
    names = messages(maildrop)
    n = len(names)
    assert n >= 6
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    # STAT: "+OK count size", straight after the greeting, no login.
    assert c.stat() == (n, total(maildrop, names))
    # LIST: one "i size" line per message, sizes as sent by RETR.
    sizes = c.scan_list()
    assert sizes == {i + 1: len(wire(read(maildrop, nm)))
                     for i, nm in enumerate(names)}
    for i in range(1, n + 1):
        st = c.ok("LIST %d" % i)
        assert re.fullmatch(rb"\+OK %d %d(?: .*)?" % (i, sizes[i]), st), st
    target = 2
    data = read(maildrop, names[target - 1])
    status, text = c.multi_raw("RETR %d" % target)
    assert status.startswith(b"+OK"), status
    assert text == wire(data)
    assert len(text) == sizes[target]
    status, text = c.multi_raw("TOP %d 0" % target)
    assert status.startswith(b"+OK"), status
    assert text == wire_top(data, 0)
    assert text.endswith(b"\r\n\r\n")
    status, text = c.multi_raw("TOP %d 100000" % target)
    assert status.startswith(b"+OK"), status
    assert text == wire(data)
    c.ok("DELE %d" % target)
    assert c.quit()
    assert c.wait_closed()
    assert not os.path.exists(os.path.join(maildrop, names[target - 1]))
    # The next session no longer sees it.
    c2 = Pop(srv.port)
    left = [nm for nm in names if nm != names[target - 1]]
    assert c2.stat() == (n - 1, total(maildrop, left))
    uids = c2.uidl_list()
    assert len(uids) == n - 1
    c2.quit()


def test_top_k_lines(pop3d, maildrop):
    """TOP n k for several k on every message, dot-stuffed lines included."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    for i, nm in enumerate(names, 1):
        data = read(maildrop, nm)
        for k in (0, 1, 2, 5, 40, 10 ** 6):
            status, text = c.multi_raw("TOP %d %d" % (i, k))
            assert status.startswith(b"+OK"), (nm, k, status)
            assert text == wire_top(data, k), (nm, k)
    c.quit()


def test_rset_unmarks(pop3d, maildrop):
    names = messages(maildrop)
    n = len(names)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 1")
    c.ok("DELE 3")
    # RFC 1939: deleted ones are counted neither in number nor in size
    assert c.stat() == (n - 2, total(maildrop, names[1:2] + names[3:]))
    c.ok("RSET")
    assert c.stat() == (n, total(maildrop, names))
    # After RSET the messages can be read again.
    status, text = c.multi_raw("RETR 1")
    assert status.startswith(b"+OK"), status
    assert text == wire(read(maildrop, names[0]))
    c.quit()
    assert sorted(os.listdir(maildrop)) == sorted(names)


def test_numbers_stable_after_dele(pop3d, maildrop):
    names = messages(maildrop)
    n = len(names)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    before = c.uidl_list()
    c.ok("DELE 2")
    after = c.uidl_list()
    assert 2 not in after
    assert after == {k: v for k, v in before.items() if k != 2}
    sizes = c.scan_list()
    assert sorted(sizes) == [i for i in range(1, n + 1) if i != 2]
    for i in range(3, n + 1):
        status, text = c.multi_raw("RETR %d" % i)
        assert status.startswith(b"+OK"), status
        assert text == wire(read(maildrop, names[i - 1]))
    c.quit()


def test_deleted_message_refused(pop3d, maildrop):
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 1")
    for cmd in ("DELE 1", "RETR 1", "LIST 1", "TOP 1 0", "UIDL 1"):
        c.err(cmd)
        c.ok("NOOP")
    c.quit()


def test_quit_removes_only_marked(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 1")
    c.ok("DELE %d" % len(names))
    c.quit()
    assert sorted(os.listdir(maildrop)) == sorted(names[1:-1])


def test_hangup_deletes_nothing(pop3d, maildrop):
    """A connection that ends without QUIT removes nothing (RFC 1939 6)."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    for i in range(1, len(names) + 1):
        c.ok("DELE %d" % i)
    c.close()
    # Also a reset (RST) instead of an orderly close.
    c = Pop(srv.port)
    c.ok("DELE 1")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    time.sleep(0.5)
    assert sorted(os.listdir(maildrop)) == sorted(names)
    c = Pop(srv.port)
    assert c.stat()[0] == len(names)
    c.quit()


def test_quit_without_transaction_command(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.quit()
    assert c.wait_closed()
    assert sorted(os.listdir(maildrop)) == sorted(names)


def test_noop_and_user_pass_open_mode(pop3d, maildrop):
    """Open maildrop: any USER/PASS accepted, then a normal transaction."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("USER x")
    c.ok("PASS y")
    assert c.stat()[0] == len(names)
    c.ok("NOOP")
    c.quit()
    c = Pop(srv.port)
    c.ok("USER someone.else@example.org")
    c.ok("PASS a long pass phrase with spaces")
    assert c.stat()[0] == len(names)
    c.quit()


CAPS = {b"TOP", b"UIDL", b"USER", b"RESP-CODES", b"PIPELINING"}


def test_capa(pop3d, maildrop):
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    status, before = c.multi("CAPA")
    assert status.startswith(b"+OK"), status
    assert CAPS <= set(before), before
    for line in before:
        # Not configured, so not announced (SPEC 3: only what works).
        assert not line.upper().startswith((b"STLS", b"SASL")), line
    assert len(set(l.split()[0].upper() for l in before)) == len(before)
    c.ok("USER x")
    c.ok("PASS y")
    status, after = c.multi("CAPA")
    assert status.startswith(b"+OK"), status
    assert after == before
    c.quit()
    # The same when TRANSACTION is entered by a transaction command.
    c = Pop(srv.port)
    c.stat()
    status, after = c.multi("CAPA")
    assert after == before
    c.quit()


PIPE_CMDS = ["CAPA", "STAT", "LIST", "LIST 1", "UIDL", "UIDL 2", "RETR 1",
             "TOP 3 2", "RETR 3", "NOOP", "DELE 2", "RETR 2", "LIST", "STAT",
             "RSET", "STAT", "FOO", "retr 4", "TOP 4 0", "DELE 1",
             "RSET", "QUIT"]
PIPE_MULTI = {"CAPA", "LIST", "UIDL", "RETR 1", "TOP 3 2", "RETR 3",
              "retr 4", "TOP 4 0"}


def _replies(port, pipelined, chunk=None):
    c = Pop(port)
    data = "".join(x + "\r\n" for x in PIPE_CMDS).encode()
    if pipelined and chunk:
        for i in range(0, len(data), chunk):
            c.send(data[i:i + chunk])
    elif pipelined:
        c.send(data)
    out = []
    for x in PIPE_CMDS:
        if not pipelined:
            c.send(x + "\r\n")
        st = c.line()
        body = None
        if x in PIPE_MULTI and st.startswith(b"+OK"):
            body = c.raw_body()
        out.append((x, st, body))
    assert c.wait_closed()
    return out


def test_pipelined_one_write(pop3d, maildrop):
    """Every command in one write: the replies are exactly those of a
    lock-step session (nothing lost, nothing reordered)."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    lock = _replies(srv.port, False)
    status = {x: st for x, st, _ in lock}
    assert status["FOO"].startswith(b"-ERR")
    assert status["RETR 2"].startswith(b"-ERR")
    for x, st, _ in lock:
        assert x in ("FOO", "RETR 2") or st.startswith(b"+OK"), (x, st)
    pipe = _replies(srv.port, True)
    assert pipe == lock
    # split at odd places too (a command across two segments)
    assert _replies(srv.port, True, chunk=7) == lock
    assert sorted(os.listdir(maildrop)) == sorted(names)
    # DELE and QUIT pipelined: the removal happens.
    c = Pop(srv.port)
    c.send("DELE 1\r\nDELE 2\r\nQUIT\r\n")
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"+OK")
    assert c.wait_closed()
    assert sorted(os.listdir(maildrop)) == sorted(names[2:])


def test_command_sent_byte_by_byte(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    for b in b"STAT\r\n":
        c.send(bytes([b]))
        time.sleep(0.02)
    st = c.line()
    assert re.fullmatch(rb"\+OK %d %d(?: .*)?" % (
        len(names), total(maildrop, names)), st), st
    c.quit()


def test_empty_maildrop(pop3d, empty_maildrop):
    srv = pop3d(empty_maildrop)
    c = Pop(srv.port)
    st = c.ok("STAT")
    assert re.fullmatch(rb"\+OK 0 0(?: .*)?", st), st
    assert c.scan_list() == {}
    assert c.uidl_list() == {}
    for cmd in ("RETR 1", "LIST 1", "DELE 1", "TOP 1 0", "UIDL 1"):
        c.err(cmd)
    c.ok("RSET")
    c.quit()
    assert os.listdir(empty_maildrop) == []


def test_round_trips_not_stalled(pop3d, maildrop):
    """Replies in one write and TCP_NODELAY (SPEC 3): 40 round trips of a
    multi-line reply take nowhere near 40 delayed-ACK stalls of 40 ms."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.multi("LIST")
    t0 = time.monotonic()
    for _ in range(20):
        status, lines = c.multi("LIST")
        assert status.startswith(b"+OK")
        status, lines = c.multi("TOP 1 0")
        assert status.startswith(b"+OK")
    assert time.monotonic() - t0 < 1.2
    c.quit()
