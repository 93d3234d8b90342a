"""pop3d end to end: RETR's converted bytes (SPEC 2, 3).

The whole-message path reads a file in large chunks and converts each in
one pass; every case here is checked byte for byte against the wire form
computed independently: CRLF line ends, a bare LF made CRLF, a CR alone
kept, a '.' starting a line doubled, the last line closed, then '.'.
Line ends, CRs and dots are placed on and around the chunk boundaries.
"""
import os
import random
import re
import subprocess

import pytest

from conftest import POP3D, TIMEOUT

CHUNK = 256 * 1024      # store.c RETR_IN


def stuffed(data):
    """The octets after RETR's status line, '.' CRLF included."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    out = re.sub(rb"(?m)^\.", b"..", out)
    return out + b".\r\n"


def retr_all(md, names):
    """RETR every message in one stdio session; {name: raw octets}."""
    cmds = b"".join(b"RETR %d\r\n" % (i + 1) for i in range(len(names)))
    r = subprocess.run([POP3D, "--index-dir", "", "--order", "arrival",
                        str(md)], input=cmds + b"QUIT\r\n",
                       capture_output=True, timeout=TIMEOUT * 6)
    out = r.stdout
    got = {}
    pos = out.index(b"\r\n") + 2            # greeting
    for name in names:
        end = out.index(b"\r\n", pos)
        status = out[pos:end]
        assert status.startswith(b"+OK "), (name, status)
        size = int(status.split()[1])
        pos = end + 2
        if out.startswith(b".\r\n", pos):
            stop = pos + 3                  # an empty message
        else:
            stop = out.index(b"\r\n.\r\n", pos) + 5
        got[name] = (size, out[pos:stop])
        pos = stop
    assert out[pos:].startswith(b"+OK"), out[pos:pos + 80]
    return got


def cases():
    rnd = random.Random(1939)
    c = {
        "empty": b"",
        "lf": b"Subject: a\n\nline\n.dot\n..two\nend\n",
        "crlf": b"Subject: a\r\n\r\nline\r\n.dot\r\nend\r\n",
        "no-final-newline": b"Subject: a\n\nlast line",
        "bare-cr": b"Subject: a\n\nx\ry\r\r\nz\r",
        "dot-first": b".starts with a dot\n.\n",
        "only-newlines": b"\n\n\n\r\n\n",
    }
    for off in (-2, -1, 0, 1):
        for what in (b"\n", b"\r\n", b"\n.", b"\r", b"\n\n.", b"."):
            body = bytearray(b"x" * (2 * CHUNK + 100))
            at = CHUNK + off
            body[at:at + len(what)] = what
            c["edge%+d-%s" % (off, what.hex())] = bytes(body)
    # Lines ending just before and after the boundary, dots after them.
    c["boundary-lf-dot"] = b"a" * (CHUNK - 1) + b"\n." + b"b\n" * 10
    c["boundary-cr-lf"] = b"a" * (CHUNK - 1) + b"\r\n.x\n"
    alphabet = b"ab.\r\n\n\n. "
    for i in range(6):
        n = rnd.choice([1, 15, 16, 17, 1000, CHUNK - 1, CHUNK, CHUNK + 1,
                        3 * CHUNK + 7])
        c["random%d" % i] = bytes(rnd.choice(alphabet) for _ in range(n))
    return c


def test_retr_byte_exact_at_every_boundary(tmp_path):
    md = tmp_path / "md"
    md.mkdir()
    data = cases()
    names = sorted(data)
    for i, name in enumerate(names):
        (md / name).write_bytes(data[name])
        os.utime(md / name, (1e9 + i, 1e9 + i))   # arrival order = names
    got = retr_all(md, names)
    for name in names:
        size, raw = got[name]
        want = stuffed(data[name])
        assert raw == want, name
        unstuffed = re.sub(rb"(?m)^\.\.", b".", raw[:-3])
        assert size == len(unstuffed), name


def test_retr_file_truncated_while_sent(tmp_path):
    """A file cut short while RETR reads it: the session ends without the
    final '.', never with wrong bytes passed off as the message."""
    md = tmp_path / "md"
    md.mkdir()
    f = md / "big"
    f.write_bytes(b"Subject: big\n\n" + (b"z" * 79 + b"\n") * 200000)
    p = subprocess.Popen([POP3D, "--index-dir", "", str(md)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(b"RETR 1\r\n")
    p.stdin.flush()
    first = p.stdout.read(100000)       # pop3d is now blocked writing
    assert first.startswith(b"+OK ")
    os.truncate(f, 1000)
    rest = p.stdout.read()
    p.stdin.close()
    p.wait(timeout=TIMEOUT)
    out = first + rest
    assert not out.endswith(b"\r\n.\r\n"), "a cut message was completed"
