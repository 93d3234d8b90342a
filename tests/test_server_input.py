"""pop3d end to end: bad input (SPEC 3) is answered with one -ERR and the
session goes on.  Most cases are dialogues in tests/data/server/*.dlg."""
import os
import threading
import time

import pytest

from server_util import (DATA, Pop, load_dialogue, messages,  # noqa: F401
                         pop3d, read, run_dialogue, wire)

DIALOGUES = sorted(f for f in os.listdir(DATA) if f.endswith(".dlg"))


def subst_for(path):
    names = messages(path)
    return {"N": len(names), "N1": len(names) + 1,
            "SIZE1": len(wire(read(path, names[0])))}


@pytest.mark.parametrize("name", DIALOGUES)
def test_dialogue(pop3d, maildrop, name):
    before = sorted(os.listdir(maildrop))
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    run_dialogue(c, load_dialogue(name), subst_for(maildrop))
    # none of the dialogues ends with a deletion in effect
    assert sorted(os.listdir(maildrop)) == before


def test_dialogues_also_pipelined(pop3d, maildrop):
    """The bad-input dialogue sent in one write gives the same replies."""
    srv = pop3d(maildrop)
    steps = load_dialogue("bad-input.dlg")
    sub = subst_for(maildrop)
    c = Pop(srv.port)
    out = b""
    for _, kind, text in steps:
        for k, v in sub.items():
            text = text.replace("{%s}" % k, str(v))
        if kind == "C:":
            out += text.encode("latin-1") + b"\r\n"
        elif kind == "R:":
            out += text.encode("latin-1")
    c.send(out)
    run_dialogue(c, [s for s in steps if s[1] not in ("C:", "R:")], sub)


def test_line_length_boundary(pop3d, maildrop):
    """255 octets with CRLF is a command; 256 is too long (RFC 2449 4)."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    ok = "USER " + "u" * (255 - 2 - 5)
    assert len(ok) + 2 == 255
    c.ok(ok)
    c.quit()
    c = Pop(srv.port)
    c.err("USER " + "u" * (256 - 2 - 5))
    c.ok("USER u")   # still in AUTHORIZATION: the long line was no USER
    c.ok("PASS p")
    c.quit()


def test_300_octet_line(pop3d, maildrop):
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    line = "NOOP" + " " * 294 + "\r\n"
    assert len(line) == 300
    c.send(line)
    assert c.line().startswith(b"-ERR")
    c.ok("NOOP")
    c.send("STAT" + "x" * 296 + "\n")
    assert c.line().startswith(b"-ERR")
    st = c.ok("STAT")
    assert st.split()[1] == str(len(messages(maildrop))).encode()
    c.quit()


def test_long_line_tail_is_not_a_command(pop3d, maildrop):
    """After 255 octets the rest of the line, though it spells DELE 1,
    is discarded; nothing is marked."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    n = len(messages(maildrop))
    c.send("X" * 300 + "DELE 1\r\n")
    assert c.line().startswith(b"-ERR")
    c.send("NOOP" + " " * 251 + "DELE 2\r\n")
    assert c.line().startswith(b"-ERR")
    assert c.stat()[0] == n
    c.quit()
    assert len(os.listdir(maildrop)) == n


def test_one_mib_line(pop3d, maildrop):
    """A 1 MiB line: one -ERR, the rest discarded, session goes on."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    big = b"RETR 1 " + b"9" * (1 << 20) + b"\r\n"
    t = threading.Thread(target=c.send, args=(big + b"NOOP\r\n",))
    t.start()
    first = c.line()
    t.join(30)
    assert not t.is_alive()
    assert first.startswith(b"-ERR"), first[:100]
    assert c.line().startswith(b"+OK")
    assert c.stat()[0] == len(messages(maildrop))
    c.quit()


def test_one_mib_line_bare_lf_and_nul(pop3d, maildrop):
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    big = b"\x00" * (1 << 20) + b"\n"
    t = threading.Thread(target=c.send, args=(big + b"NOOP\n",))
    t.start()
    first = c.line()
    t.join(30)
    assert first.startswith(b"-ERR"), first[:100]
    assert c.line().startswith(b"+OK")
    c.quit()


def test_many_errors(pop3d, maildrop):
    """Many consecutive errors: every reply is one -ERR line, and the
    server either keeps answering or closes (it may, SPEC 3)."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.send("BOGUS\r\n" * 200)
    count = 0
    try:
        for _ in range(200):
            line = c.line()
            assert line.startswith(b"-ERR"), line
            count += 1
    except AssertionError:
        if not c.eof:
            raise
    assert count >= 10
    if count == 200:
        c.ok("NOOP")


def test_errors_interleaved_do_not_close(pop3d, maildrop):
    """Errors separated by good commands never add up to a close."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.send("BOGUS\r\nNOOP\r\n" * 150)
    for _ in range(150):
        assert c.line().startswith(b"-ERR")
        assert c.line().startswith(b"+OK")
    c.quit()


def test_partial_line_then_close_deletes_nothing(pop3d, maildrop):
    names = sorted(os.listdir(maildrop))
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 1")
    c.send("QUI")   # no terminator: not a command
    c.close()
    time.sleep(0.5)
    assert sorted(os.listdir(maildrop)) == names
