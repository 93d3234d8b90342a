"""pop3d end to end: what is served from the maildrop (SPEC 2).

Byte-exact retrieval of every sample, sizes equal to the octets sent, line
ending cases, UIDL rules, which directory entries count as messages,
--order arrival.
"""
import os
import re
import shutil
import socket
import time

import pytest

from server_util import (Pop, messages, messages_arrival, pop3d,  # noqa: F401
                         read, wire)


def raw_retr(c, n):
    """RETR n, returning the status and the raw octets up to '.' CRLF."""
    c.send("RETR %d\r\n" % n)
    status = c.line()
    if not status.startswith(b"+OK"):
        return status, None
    while b"\r\n.\r\n" not in b"\r\n" + c.buf:
        chunk = c.sock.recv(65536)
        assert chunk, "closed in the middle of RETR %d" % n
        c.buf += chunk
    i = (b"\r\n" + c.buf).index(b"\r\n.\r\n")
    raw, c.buf = c.buf[:i], c.buf[i + 3:]
    return status, raw


def unstuff(raw):
    return b"".join(l[1:] if l.startswith(b".") else l
                    for l in raw.splitlines(keepends=True))


def test_samples_present():
    """The shipped samples cover the cases SPEC 2 describes."""
    here = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "maildrop")
    names = messages(here)
    assert len(names) >= 6
    datas = {n: read(here, n) for n in names}
    assert any(b"multipart/mixed" in d and b"base64" in d
               for d in datas.values())
    lines = [l for d in datas.values() for l in d.splitlines()]
    assert b"." in lines and any(l.startswith(b"..") for l in lines)
    assert any(b"\r\n" in d for d in datas.values())
    assert any(b"\n" in d and b"\r" not in d for d in datas.values())
    assert any(not d.endswith(b"\n") for d in datas.values())
    assert any(len(d.splitlines()) > 200 for d in datas.values())


def test_every_sample_byte_exact(pop3d, maildrop):
    """RETR of each sample after un-stuffing is the file with bare LF as
    CRLF and the last line closed; LIST size = octets sent."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    sizes = c.scan_list()
    for i, name in enumerate(names, 1):
        status, raw = raw_retr(c, i)
        assert status.startswith(b"+OK"), (name, status)
        # every line ends in CRLF, no bare CR or LF on the wire
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert b"\r" not in raw.replace(b"\r\n", b"")
        # every line beginning with '.' is stuffed
        for line in raw.split(b"\r\n"):
            assert not line.startswith(b".") or line.startswith(b".."), \
                (name, line)
        text = unstuff(raw)
        assert text == wire(read(maildrop, name)), name
        assert sizes[i] == len(text), name
    c.quit()


def test_dot_lines_stuffed(pop3d, maildrop):
    """The sample with '.', '..' and '...' lines goes out stuffed."""
    names = messages(maildrop)
    idx = [i for i, n in enumerate(names, 1) if "dot" in n]
    assert idx
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    status, raw = raw_retr(c, idx[0])
    lines = raw.split(b"\r\n")
    assert b".." in lines            # a line that is just "."
    assert b"...hidden-cache" in lines
    assert b"....three dots at the start of this one" in lines
    assert b"..quillrc" in lines
    assert raw.endswith(b"\r\n..\r\n")  # last line of the file is "."
    c.quit()


def write(path, name, data, mtime=None):
    p = os.path.join(path, name)
    with open(p, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def test_line_ending_cases(pop3d, empty_maildrop):
    d = str(empty_maildrop)
    cases = {
        "lf": b"Subject: lf\n\nline one\nline two\n",
        "crlf": b"Subject: crlf\r\n\r\nline one\r\nline two\r\n",
        "nofinal": b"Subject: nofinal\n\nlast line without newline",
        "mixed": b"Subject: mixed\r\n\nline a\r\nline b\nline c",
        "dotend": b"Subject: d\n\n.\n..\n.x",
        "empty": b"",
        "onlyheader": b"Subject: no body\n",
        "blankbody": b"Subject: blank\n\n",
        "bigline": b"Subject: big\n\n" + b"y" * 200000 + b"\n",
    }
    for name, data in cases.items():
        write(d, name, data)
    names = messages(d)
    srv = pop3d(d)
    c = Pop(srv.port)
    sizes = c.scan_list()
    n, octets = c.stat()
    assert n == len(cases)
    assert octets == sum(len(wire(v)) for v in cases.values())
    for i, name in enumerate(names, 1):
        status, raw = raw_retr(c, i)
        assert status.startswith(b"+OK"), (name, status)
        text = unstuff(raw)
        assert text == wire(cases[name]), name
        assert sizes[i] == len(wire(cases[name])), name
        st = c.ok("LIST %d" % i)
        assert re.fullmatch(rb"\+OK %d %d(?: .*)?" % (i, sizes[i]), st)
    c.quit()


def test_stat_sizes_not_file_sizes(pop3d, empty_maildrop):
    """A bare-LF file of 3 lines is 3 octets larger on the wire."""
    d = str(empty_maildrop)
    write(d, "m", b"A: b\n\nc\n")
    srv = pop3d(d)
    c = Pop(srv.port)
    assert c.stat() == (1, 11)
    assert c.ok("LIST 1").split()[:3] == [b"+OK", b"1", b"11"]
    c.quit()


UID_RE = re.compile(rb"[\x21-\x7e]{1,70}")


def uid_by_name(port, path):
    names = messages(path)
    c = Pop(port)
    uids = c.uidl_list()
    for i in uids:
        st = c.ok("UIDL %d" % i)
        assert st.split()[:3] == [b"+OK", b"%d" % i, uids[i]], st
    c.quit()
    assert sorted(uids) == list(range(1, len(names) + 1))
    return {names[i - 1]: u for i, u in uids.items()}


def test_uidl_rules(pop3d, maildrop, tmp_path):
    srv = pop3d(maildrop)
    first = uid_by_name(srv.port, maildrop)
    assert len(set(first.values())) == len(first)
    for u in first.values():
        assert UID_RE.fullmatch(u), u
    # stable across sessions
    assert uid_by_name(srv.port, maildrop) == first
    # stable across a copy that keeps times (another server, other dir)
    copy = tmp_path / "copy"
    shutil.copytree(maildrop, copy)
    srv2 = pop3d(copy)
    assert uid_by_name(srv2.port, copy) == first
    # stable after another message is deleted
    c = Pop(srv.port)
    names = messages(maildrop)
    c.ok("DELE 1")
    c.quit()
    second = uid_by_name(srv.port, maildrop)
    assert second == {k: v for k, v in first.items() if k != names[0]}


def test_uidl_new_file_reusing_name(pop3d, maildrop):
    """Same name and size, new content and mtime: a new unique-id."""
    srv = pop3d(maildrop)
    first = uid_by_name(srv.port, maildrop)
    name = sorted(first)[0]
    p = os.path.join(maildrop, name)
    old = read(p)
    st = os.stat(p)
    os.unlink(p)
    new = old.upper()
    assert new != old and len(new) == len(old)
    write(maildrop, name, new, mtime=st.st_mtime + 3600)
    after = uid_by_name(srv.port, maildrop)
    assert after[name] != first[name]
    assert {k: v for k, v in after.items() if k != name} == \
        {k: v for k, v in first.items() if k != name}
    # a new mtime alone also gives a new one (UID from name and mtime)
    os.utime(p, (st.st_mtime + 7200, st.st_mtime + 7200))
    assert uid_by_name(srv.port, maildrop)[name] not in (first[name],
                                                          after[name])


def test_uidl_long_and_odd_names(pop3d, empty_maildrop):
    d = str(empty_maildrop)
    names = ["a" * 200, "with space", "ümlaut", "tab\tname", "x:y,z",
             "1700000000.M1P2.host", "b" * 68]
    for i, nm in enumerate(names):
        write(d, nm, b"Subject: %d\n\nbody\n" % i, mtime=1700000000 + i)
    srv = pop3d(d)
    uids = uid_by_name(srv.port, d)
    assert len(uids) == len(names)
    assert len(set(uids.values())) == len(names)
    for u in uids.values():
        assert UID_RE.fullmatch(u), u


def test_only_regular_files_served(pop3d, tmp_path):
    d = tmp_path / "md"
    d.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"Subject: secret\n\nnot yours\n")
    write(str(d), "regular.eml", b"Subject: regular\n\nhello\n")
    write(str(d), ".dotfile", b"Subject: dot\n\nhidden but served\n")
    os.symlink(str(outside), str(d / "link-outside"))
    os.symlink("regular.eml", str(d / "link-inside"))
    os.symlink("/nonexistent/x", str(d / "link-dangling"))
    (d / "subdir").mkdir()
    write(str(d / "subdir"), "nested.eml", b"Subject: nested\n\nno\n")
    os.mkfifo(str(d / "fifo"))
    us = socket.socket(socket.AF_UNIX)
    us.bind(str(d / "sock"))
    try:
        srv = pop3d(d)
        c = Pop(srv.port)
        n, size = c.stat()
        assert n == 2
        got = set()
        for i in (1, 2):
            status, text = c.multi_raw("RETR %d" % i)
            assert status.startswith(b"+OK"), status
            got.add(text)
        assert got == {wire(b"Subject: regular\n\nhello\n"),
                       wire(b"Subject: dot\n\nhidden but served\n")}
        c.err("RETR 3")
        c.quit()
    finally:
        us.close()
    assert outside.exists()


def test_file_changed_during_session(pop3d, maildrop):
    """A message replaced, vanished or changed (size or mtime) since the
    session began answers -ERR [SYS/TEMP], never wrong bytes."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.stat()
    paths = [os.path.join(maildrop, nm) for nm in names]
    tmp = os.path.join(os.path.dirname(maildrop), "incoming")
    with open(tmp, "wb") as f:
        f.write(b"Subject: replacement\n\nnew mail\n")
    os.rename(tmp, paths[0])                       # 1: replaced
    os.unlink(paths[1])                            # 2: vanished
    with open(paths[2], "ab") as f:                # 3: grown in place
        f.write(b"appended\n")
    st = os.stat(paths[3])                         # 4: new mtime only
    os.utime(paths[3], (st.st_atime, st.st_mtime + 100))
    for i in (1, 2, 3, 4):
        for cmd in ("RETR %d" % i, "TOP %d 0" % i):
            st = c.cmd(cmd)
            assert st.startswith(b"-ERR [SYS/TEMP]"), (cmd, st)
            c.ok("NOOP")
    status, text = c.multi_raw("RETR 5")
    assert text == wire(read(paths[4]))
    c.quit()
    assert read(paths[0]) == b"Subject: replacement\n\nnew mail\n"


def test_replaced_marked_file_not_removed(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 1")
    c.ok("DELE 2")
    p = os.path.join(maildrop, names[0])
    tmp = os.path.join(os.path.dirname(maildrop), "incoming")
    with open(tmp, "wb") as f:
        f.write(b"Subject: arrived later\n\nkeep me\n")
    os.rename(tmp, p)
    c.quit()
    assert read(p) == b"Subject: arrived later\n\nkeep me\n"
    assert not os.path.exists(os.path.join(maildrop, names[1]))


def test_new_mail_not_seen_until_next_session(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    assert c.stat()[0] == len(names)
    write(maildrop, "zz-new-arrival", b"Subject: new\n\nhi\n")
    assert c.stat()[0] == len(names)
    c.err("RETR %d" % (len(names) + 1))
    c.quit()
    c = Pop(srv.port)
    assert c.stat()[0] == len(names) + 1
    c.quit()


def test_default_order_is_readdir(pop3d, empty_maildrop):
    d = str(empty_maildrop)
    for i in range(40):
        nm = "m%02d-%s" % (i, "abcdefgh"[i % 8] * (i % 5 + 1))
        write(d, nm, b"Subject: " + nm.encode() + b"\n\n" + nm.encode())
    names = messages(d)
    srv = pop3d(d)
    c = Pop(srv.port)
    for i, nm in enumerate(names, 1):
        status, text = c.multi_raw("RETR %d" % i)
        assert text == wire(read(d, nm)), (i, nm)
    c.quit()


def test_order_arrival(pop3d, empty_maildrop):
    d = str(empty_maildrop)
    base = 1700000000
    specs = [("z-oldest", base), ("a-newest", base + 300),
             ("m-middle", base + 100), ("b2-tie", base + 200),
             ("b1-tie", base + 200), (".hidden-first", base - 50)]
    for nm, t in specs:
        write(d, nm, b"Subject: " + nm.encode() + b"\n\nbody\n", mtime=t)
    expect = ["%s" % x for x in (".hidden-first", "z-oldest", "m-middle",
                                 "b1-tie", "b2-tie", "a-newest")]
    assert messages_arrival(d) == expect
    srv = pop3d(d, "--order", "arrival")
    c = Pop(srv.port)
    for i, nm in enumerate(expect, 1):
        status, lines = c.multi("TOP %d 0" % i)
        assert status.startswith(b"+OK"), status
        assert lines[0] == b"Subject: " + nm.encode(), (i, lines)
    c.quit()
    # also as --order=arrival
    srv = pop3d(d, "--order=arrival")
    c = Pop(srv.port)
    status, lines = c.multi("TOP 1 0")
    assert lines[0] == b"Subject: .hidden-first"
    c.quit()


def test_huge_maildrop_count(pop3d, empty_maildrop):
    """2000 messages: STAT, LIST and UIDL consistent."""
    d = str(empty_maildrop)
    for i in range(2000):
        write(d, "msg%04d" % i, b"Subject: %d\n\nx\n" % i)
    srv = pop3d(d)
    c = Pop(srv.port)
    n, size = c.stat()
    assert n == 2000
    sizes = c.scan_list()
    assert len(sizes) == 2000 and sum(sizes.values()) == size
    assert len(set(c.uidl_list().values())) == 2000
    status, text = c.multi_raw("RETR 2000")
    assert text == wire(read(d, messages(d)[-1]))
    c.quit()
