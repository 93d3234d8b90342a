"""pop3d end to end: RETR of a file already in wire form (SPEC 2, 3).

A file whose every line ends in CRLF, with no line starting with '.', and
that ends in CRLF (or is empty) goes out as it is, copied by the kernel
(sendfile) from the file to a plain connection.  Its bytes must be those
the converting path sends, in the stdio mode and the listener mode; a
file that needs any change must not take that path; a file cut short
while it goes ends the session, never a completed message.
"""
import os
import socket
import subprocess
import time

from conftest import POP3D, TIMEOUT, Conn, traced_env
from server_util import wait_for
from test_retr import retr_all, stuffed

CHUNK = 256 * 1024

# name: (content, whether it is already in wire form)
FILES = {
    "a-empty": (b"", True),
    "b-crlf": (b"Subject: a\r\n\r\nline\r\nend\r\n", True),
    "c-crlf-big": ((b"y" * 78 + b"\r\n") * (3 * CHUNK // 80 + 7), True),
    "d-crlf-dot": (b"Subject: a\r\n\r\n.dot\r\nend\r\n", False),
    "e-lf": (b"Subject: a\n\nline\nend\n", False),
    "f-mixed": (b"Subject: a\r\n\nline\r\nend\n", False),
    "g-crlf-noeol": (b"Subject: a\r\n\r\nlast", False),
    "h-crlf-dot-first": (b".x\r\nend\r\n", False),
    "i-crlf-cr-eof": (b"Subject: a\r\n\r\nx\r", False),
}


def fill(md):
    names = sorted(FILES)
    for i, name in enumerate(names):
        (md / name).write_bytes(FILES[name][0])
        os.utime(md / name, (1e9 + i, 1e9 + i))
    return names


def sendfile_sizes(trace):
    """Byte counts of the sendfile calls in an strace -o file."""
    out = []
    with open(trace) as f:
        for line in f:
            if "sendfile(" in line and "= " in line:
                out.append(line.rsplit("= ", 1)[1].split()[0])
    return out


def test_zerocopy_byte_exact_stdio(tmp_path):
    md = tmp_path / "md"
    md.mkdir()
    names = fill(md)
    got = retr_all(md, names)
    for name in names:
        size, raw = got[name]
        assert raw == stuffed(FILES[name][0]), name
        if FILES[name][1]:
            assert size == len(FILES[name][0]), name


def run_traced(md, n, trace):
    r = subprocess.run(["strace", "-f", "-e", "trace=sendfile", "-o",
                        str(trace), POP3D, "--index-dir", "", "--order",
                        "arrival", str(md)],
                       input=b"RETR %d\r\nQUIT\r\n" % n, capture_output=True,
                       timeout=TIMEOUT * 6, env=traced_env())
    assert r.stdout.splitlines()[-1].startswith(b"+OK"), r.stdout[-200:]
    return r.stdout


def test_zerocopy_path_taken_only_for_wire_form_files(tmp_path):
    """strace shows sendfile for a CRLF file and none for any file that
    needs a CR or a '.' added."""
    md = tmp_path / "md"
    md.mkdir()
    names = fill(md)
    for i, name in enumerate(names):
        content, plain = FILES[name]
        if not content:
            continue            # nothing to send either way
        trace = tmp_path / ("trace-" + name)
        out = run_traced(md, i + 1, trace)
        assert stuffed(content) in out, name
        sizes = sendfile_sizes(trace)
        if plain:
            assert sizes and sum(int(s) for s in sizes if s.isdigit()) \
                == len(content), (name, sizes)
        else:
            assert sizes == [], (name, sizes)


def test_zerocopy_listener_mode(tmp_path, server):
    """The listener mode takes the path too, byte-exact, and a TOP of the
    same file still goes through the converter."""
    md = tmp_path / "md"
    md.mkdir()
    names = fill(md)
    trace = tmp_path / "trace"
    s = server(md, "--index-dir", "", "--order", "arrival",
               prefix=("strace", "-f", "-e", "trace=sendfile", "-o",
                       str(trace)), env=traced_env())
    c = Conn(s.port)
    for i, name in enumerate(names):
        status, text = c.multi_raw("RETR %d" % (i + 1))
        assert status.startswith(b"+OK"), (name, status)
        content = FILES[name][0]
        want = stuffed(content)[:-3].replace(b"\r\n..", b"\r\n.")
        if want.startswith(b".."):
            want = want[1:]
        assert text == want, name
    n = names.index("b-crlf") + 1
    status, text = c.multi_raw("TOP %d 1" % n)
    assert status.startswith(b"+OK"), status
    assert text == b"Subject: a\r\n\r\nline\r\n"
    c.quit()
    plain = sum(len(FILES[n][0]) for n in names if FILES[n][1])
    assert wait_for(lambda: sum(int(x) for x in sendfile_sizes(trace)
                         if x.isdigit()) == plain)


def test_zerocopy_file_truncated_while_sent(tmp_path):
    """A CRLF file cut short while the kernel sends it: the session ends
    without the final '.', never with wrong bytes passed off as the
    message."""
    md = tmp_path / "md"
    md.mkdir()
    f = md / "big"
    data = b"Subject: big\r\n\r\n" + (b"z" * 78 + b"\r\n") * 200000
    f.write_bytes(data)
    p = subprocess.Popen([POP3D, "--index-dir", "", str(md)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(b"RETR 1\r\n")
    p.stdin.flush()
    first = p.stdout.read(100000)       # pop3d is now blocked writing
    assert first.startswith(b"+OK pop3d ready\r\n+OK %d octets\r\n" % len(data))
    os.truncate(f, 1000)
    rest = p.stdout.read()
    p.stdin.close()
    p.wait(timeout=TIMEOUT)
    out = first + rest
    assert not out.endswith(b"\r\n.\r\n"), "a cut message was completed"
    assert len(out) < len(data), "more bytes than the file had left"


def test_zerocopy_write_deadline(tmp_path, server):
    """A client that stops reading in the middle of a zero-copy RETR is
    dropped at the idle timeout (no sooner than it), never held forever;
    what it got is a cut message, not a completed one."""
    md = tmp_path / "md"
    md.mkdir()
    data = b"Subject: big\r\n\r\n" + (b"w" * 78 + b"\r\n") * 400000
    (md / "big").write_bytes(data)
    s = server(md, "--index-dir", "", "--timeout", "2")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", s.port))
    got = sock.recv(1024)
    t0 = time.monotonic()
    sock.sendall(b"RETR 1\r\n")
    assert wait_for(lambda: b"write timeout" in s.output(),
                    timeout=TIMEOUT * 3), s.output()[-500:]
    assert time.monotonic() - t0 >= 1.9
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert b"+OK %d octets\r\n" % len(data) in got
    assert not got.endswith(b"\r\n.\r\n")
    assert len(got) < len(data)
