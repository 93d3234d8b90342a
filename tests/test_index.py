"""pop3d end to end: the maildrop index (--index-dir, SPEC 1).

The index is derived data: whatever happens to it or to the maildrop,
sizes and unique-ids are the ones a session without an index gives, and a
message is never served with wrong bytes.  Sessions here run in the stdio
mode (one process each, as under inetd or systemd Accept=yes) unless said.
"""
import os
import pathlib
import re
import shutil
import tempfile
import subprocess
import threading
import time

import pytest

from conftest import traced_env, POP3D, TIMEOUT, Conn
from server_util import wire


def session(md, idx, commands, *opts):
    """One stdio session; returns the reply lines."""
    r = subprocess.run([POP3D, *opts, "--index-dir", str(idx), str(md)],
                       input=commands.encode(), capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r
    return r.stdout.split(b"\r\n")


def listing(md, idx, *opts):
    """(STAT line, LIST body, UIDL body) of one session."""
    lines = session(md, idx, "STAT\r\nLIST\r\nUIDL\r\nQUIT\r\n", *opts)
    stat = lines[1]
    i = lines.index(b".", 2)
    j = lines.index(b".", i + 1)
    return stat, lines[3:i], lines[i + 2:j]


def truth(md):
    """The listing of a session without an index."""
    return listing(md, "")


def expected_sizes(md, lines):
    """LIST lines checked against the files themselves (numbers via UIDL
    are not needed: every size is compared as a multiset)."""
    sizes = sorted(len(wire((md / n).read_bytes()))
                   for n in os.listdir(md))
    got = sorted(int(l.split()[1]) for l in lines)
    return sizes == got


def make_maildrop(tmp_path, n=20):
    md = tmp_path / "md"
    md.mkdir()
    for i in range(n):
        body = b"Subject: %d\n\n" % i + b"line\n" * (i + 1)
        if i % 3 == 0:
            body = body.replace(b"\n", b"\r\n")
        if i % 4 == 0:
            body += b".dot line\nno newline at the end"
        (md / ("m%03d" % i)).write_bytes(body)
    idx = tmp_path / "idx"
    idx.mkdir()
    return md, idx


def settle(md):
    """Wait until the maildrop folder's mtime and ctime are more than a
    second old: only then may a listing be reused without a readdir."""
    deadline = time.time() + TIMEOUT
    while True:
        st = os.stat(md)
        if max(st.st_mtime, st.st_ctime) + 2.2 < time.time():
            return
        assert time.time() < deadline
        time.sleep(0.1)


def traced(md, idx, commands):
    """A stdio session under strace: the reply and the names opened or
    read in the maildrop."""
    log = str(md) + ".strace"
    r = subprocess.run(["strace", "-f", "-o", log, "-e",
                        "trace=openat,open,read,getdents64",
                        POP3D, "--index-dir", str(idx), str(md)],
                       input=commands.encode(), capture_output=True,
                       timeout=TIMEOUT * 3, env=traced_env())
    with open(log) as f:
        calls = f.read()
    os.unlink(log)
    opened = re.findall(r'openat\(\d+, "([^"/]+)"', calls)
    return r.stdout, opened, "getdents64" in calls


# The index file's layout (index.c): the checksum at 16..24 covers every
# byte from 24; the header is 88 bytes, a record 72, its size field at 56.
REC0_SIZE = 88 + 56


def checksum(data):
    """index.c's checksum: four lanes over 32-byte blocks, then words."""
    m = (1 << 64) - 1

    def word(i, k=8):
        return int.from_bytes(data[i:i + k], "little")

    def step(h, w):
        h = ((h ^ w) * 0x100000001b3) & m
        return h ^ (h >> 31)
    h = [0x9E3779B97F4A7C15 ^ len(data), 0xC2B2AE3D27D4EB4F,
         0x165667B19E3779F9, 0x27D4EB2F165667C5]
    n32 = len(data) // 32 * 32
    for i in range(0, n32, 32):
        h = [step(h[k], word(i + 8 * k)) for k in range(4)]
    r = (h[0] ^ (h[1] * 0x9E3779B97F4A7C15 & m) ^
         (h[2] * 0xC2B2AE3D27D4EB4F & m) ^ (h[3] * 0x165667B19E3779F9 & m))
    n8 = len(data) // 8 * 8
    for i in range(n32, n8, 8):
        r = step(r, word(i))
    r = ((r ^ word(n8, len(data) - n8)) * 0x100000001b3) & m
    return r ^ (r >> 29)


def index_file(idx):
    names = [n for n in os.listdir(idx) if not n.endswith(".tmp")]
    assert len(names) == 1, names
    return idx / names[0]


def test_second_session_reads_no_message(tmp_path):
    """An unchanged maildrop: the second session answers STAT from the
    index without listing the folder or opening any message."""
    md, idx = make_maildrop(tmp_path)
    settle(md)
    first = listing(md, idx)
    assert first == truth(md)
    assert expected_sizes(md, first[1])
    out, opened, listed = traced(md, idx, "STAT\r\nQUIT\r\n")
    assert out.split(b"\r\n")[1] == first[0]
    msgs = set(os.listdir(md))
    assert not msgs & set(opened), opened
    assert not listed


def test_new_mail_reads_only_the_new_file(tmp_path):
    """After new mail: a readdir and the new file only."""
    md, idx = make_maildrop(tmp_path)
    settle(md)
    listing(md, idx)
    (md / "new").write_bytes(b"Subject: new\n\nnew\n")
    out, opened, listed = traced(md, idx, "STAT\r\nQUIT\r\n")
    assert listed
    assert set(opened) & set(os.listdir(md)) == {"new"}, opened
    assert out.split(b"\r\n")[1] == truth(md)[0]


def test_changes_give_true_listing(tmp_path):
    """New mail, a removed message, a renamed file, a file replaced by
    rename: each time the listing is the true one (from the folder, sizes
    from the index where the file is the same), then from the index
    alone once the folder settled."""
    md, idx = make_maildrop(tmp_path)
    settle(md)
    listing(md, idx)
    changes = [
        lambda: (md / "zz").write_bytes(b"Subject: zz\n\nnew\nmail\n"),
        lambda: os.unlink(md / "m005"),
        lambda: os.rename(md / "m006", md / "renamed"),
        lambda: ((tmp_path / "t").write_bytes(b"Subject: o\n\n" + b"x\n" * 50),
                 os.rename(tmp_path / "t", md / "m007")),
    ]
    for change in changes:
        change()
        got = listing(md, idx)
        assert got == truth(md)
        assert expected_sizes(md, got[1])
    settle(md)
    listing(md, idx)
    out, opened, listed = traced(md, idx, "STAT\r\nLIST\r\nUIDL\r\nQUIT\r\n")
    assert not listed
    assert listing(md, idx) == truth(md)


DAMAGES = ["truncated", "garbage", "version", "checksum", "empty",
           "foreign", "other-maildrop"]


def test_damaged_index_rebuilt(tmp_path):
    """A damaged index is never trusted: it is detected and rebuilt."""
    md, idx = make_maildrop(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_bytes(b"Subject: x\n\n" + b"y\n" * 999)
    settle(md)
    good = listing(md, idx)
    assert good == truth(md) and expected_sizes(md, good[1])
    listing(other, idx)
    of = idx / ("md-%x-%x" % (os.stat(other).st_dev, os.stat(other).st_ino))
    f = idx / ("md-%x-%x" % (os.stat(md).st_dev, os.stat(md).st_ino))
    for damage in DAMAGES:
        data = bytearray(f.read_bytes())
        if damage == "truncated":
            data = data[:len(data) // 2]
        elif damage == "garbage":
            data = bytearray(os.urandom(len(data)))
        elif damage == "version":
            data[8] ^= 0x7f             # made by another pop3d version
        elif damage == "checksum":
            data[len(data) // 3] ^= 0x55
        elif damage == "empty":
            data = bytearray()
        elif damage == "other-maildrop":
            data = bytearray(of.read_bytes())
        elif damage == "foreign":
            # Valid but lying (a size changed, checksum made again) and
            # owned by another user: only the owner check refuses it.
            data[REC0_SIZE:REC0_SIZE + 8] = (10**6).to_bytes(8, "little")
            data[16:24] = checksum(bytes(data[24:])).to_bytes(8, "little")
        f.write_bytes(bytes(data))
        if damage == "foreign":
            os.chown(f, 65534, 65534)
        assert listing(md, idx) == good, damage
        st = os.stat(f)
        assert st.st_uid == os.geteuid() and st.st_size > 88, damage
        # Rebuilt: the next session lists nothing from the folder.
        out, opened, listed = traced(md, idx, "STAT\r\nQUIT\r\n")
        assert not listed and out.split(b"\r\n")[1] == good[0], damage


def test_rewritten_in_place_never_wrong_bytes(tmp_path):
    """A file rewritten in place (inode kept) with its size and mtime put
    back: RETR answers -ERR [SYS/TEMP], the next session has its true
    size (the index is dropped)."""
    md, idx = make_maildrop(tmp_path, 3)
    f = md / "m001"
    old = f.read_bytes()
    settle(md)
    stat0, lst, uidl = listing(md, idx)
    num = [l.split()[0] for l in uidl if l.split()[1].startswith(b"m001:")][0]
    st = os.stat(f)
    new = old.replace(b"line\n", b"lin\r\n")   # same length, other wire size
    assert len(new) == len(old) and len(wire(new)) != len(wire(old))
    with open(f, "r+b") as fh:
        fh.write(new)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    lines = session(md, idx, "RETR %s\r\nQUIT\r\n" % num.decode())
    assert lines[1].startswith(b"-ERR [SYS/TEMP]"), lines
    got = listing(md, idx)
    assert got == truth(md)
    size = [l for l in got[1] if l.split()[0] == num][0].split()[1]
    assert int(size) == len(wire(new))


def test_index_folder_missing_or_readonly(tmp_path, server):
    """A missing folder: served as before, one log line for the whole
    server however many sessions."""
    md, idx = make_maildrop(tmp_path, 5)
    srv = server(md, "--index-dir", str(tmp_path / "missing"))
    for _ in range(3):
        c = Conn(srv.port)
        status = c.cmd("STAT")
        assert status == truth(md)[0]
        c.cmd("QUIT")
        c.close()
    assert srv.output().count(b"unusable") == 1, srv.output()


def test_index_folder_not_writable():
    """Serving as a user who cannot write the folder: no index, same
    answers."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="pop3d-index-"))
    try:
        os.chmod(top, 0o755)
        md, idx = make_maildrop(top, 5)
        for n in os.listdir(md):
            os.chmod(md / n, 0o644)
        os.chmod(idx, 0o755)
        got = listing(md, idx, "--user", "nobody")
        assert got == truth(md)
        assert expected_sizes(md, got[1])
        assert os.listdir(idx) == []
    finally:
        shutil.rmtree(top)


def test_concurrent_writers(tmp_path, server):
    """8 stdio sessions at once and a listener, while mail arrives and
    goes: every answer is a true listing of some moment, and the index
    left behind is valid and true."""
    md, idx = make_maildrop(tmp_path, 30)
    srv = server(md, "--index-dir", str(idx))
    errors = []
    stop = threading.Event()

    def stdio_worker():
        while not stop.is_set():
            lines = session(md, idx, "STAT\r\nQUIT\r\n")
            if not lines[1].startswith(b"+OK"):
                errors.append(lines)

    def listener_worker():
        while not stop.is_set():
            c = Conn(srv.port)
            s = c.cmd("STAT")
            if not s.startswith(b"+OK"):
                errors.append(s)
            c.cmd("QUIT")
            c.close()

    threads = [threading.Thread(target=stdio_worker) for _ in range(8)]
    threads.append(threading.Thread(target=listener_worker))
    for t in threads:
        t.start()
    for i in range(20):
        tmp = tmp_path / ("t%d" % i)
        tmp.write_bytes(b"Subject: %d\n\n" % i + b"z\n" * i)
        os.rename(tmp, md / ("new%02d" % i))
        if i % 4 == 0 and i < 30:
            os.unlink(md / ("m%03d" % i))
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert not [n for n in os.listdir(idx) if n.endswith(".tmp")]
    got = listing(md, idx)
    assert got == truth(md)
    assert expected_sizes(md, got[1])
    settle(md)
    listing(md, idx)
    out, opened, listed = traced(md, idx, "STAT\r\nQUIT\r\n")
    assert not listed and not set(opened) & set(os.listdir(md))
    assert out.split(b"\r\n")[1] == truth(md)[0]
