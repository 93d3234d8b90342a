"""pop3d end to end: the UPDATE state and the size of a maildrop (SPEC 2).

- QUIT's check and removal are one step: a message renamed over a marked
  name at the moment of removal stays (gdb stops pop3d there and does it).
- A maildrop with more messages than --max-messages is refused with
  -ERR [SYS/PERM], never served in part.
"""
import os
import shutil
import subprocess

import pytest

from conftest import traced_env, POP3D, TIMEOUT, Conn

GDB = shutil.which("gdb")


def run_under_gdb(tmp_path, maildrop, stop_at, commands):
    """Run a stdio session of pop3d under gdb; at the first call of
    stop_at, gdb runs the shell command `mv NEW MAILDROP/a` and touches a
    marker, then lets pop3d go on.  Returns (output, marker hit)."""
    new = tmp_path / "new"
    new.write_bytes(b"Subject: new\n\nnew mail, not to be removed\n")
    inp = tmp_path / "in"
    inp.write_bytes(commands)
    out = tmp_path / "out"
    hit = tmp_path / "hit"
    script = tmp_path / "gdb.cmds"
    script.write_text(
        "set breakpoint pending on\n"
        "set disable-randomization off\n"
        "set pagination off\n"
        "set confirm off\n"
        "break %s\n"
        "commands\n"
        "silent\n"
        "shell mv %s %s/a && touch %s\n"
        "delete\n"
        "continue\n"
        "end\n"
        "run --order arrival %s <%s >%s 2>/dev/null\n"
        % (stop_at, new, maildrop, hit, maildrop, inp, out))
    subprocess.run([GDB, "-batch", "-nx", "-x", str(script), POP3D],
                   env=traced_env(),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120, check=True)
    return out.read_bytes(), hit.exists()


@pytest.mark.skipif(GDB is None, reason="gdb not installed")
@pytest.mark.parametrize("stop_at", ["renameat2", "unlinkat"])
def test_rename_over_marked_name_at_removal(tmp_path, stop_at):
    """A new message renamed over the marked name while QUIT removes it is
    left in place: renameat2 is the moment before the marked file is moved
    aside (the new file is then moved aside, seen to be another and put
    back), unlinkat the moment between the check and the removal."""
    md = tmp_path / "maildrop"
    md.mkdir()
    (md / "a").write_bytes(b"Subject: a\n\nold\n")
    (md / "b").write_bytes(b"Subject: b\n\nkept\n")
    os.utime(md / "a", (1000000000, 1000000000))    # a is message 1
    os.utime(md / "b", (1000000100, 1000000100))
    out, hit = run_under_gdb(tmp_path, md, stop_at,
                             b"UIDL\r\nDELE 1\r\nDELE 2\r\nRSET\r\n"
                             b"LIST 1\r\nDELE 1\r\nQUIT\r\n")
    assert hit, "pop3d never called %s while removing" % stop_at
    lines = out.split(b"\r\n")
    assert lines[0].startswith(b"+OK")
    assert lines[-2].startswith(b"+OK"), out
    assert sorted(os.listdir(md)) == ["a", "b"], os.listdir(md)
    assert (md / "a").read_bytes() == \
        b"Subject: new\n\nnew mail, not to be removed\n"
    assert (md / "b").read_bytes() == b"Subject: b\n\nkept\n"


def test_marked_message_removed_with_private_rename(tmp_path):
    """Without interference QUIT removes exactly the marked messages and
    leaves no private name behind."""
    md = tmp_path / "maildrop"
    md.mkdir()
    for name in ("a", "b", ".c"):
        (md / name).write_bytes(b"Subject: %s\n\nx\n" % name.encode())
    r = subprocess.run([POP3D, str(md)],
                       input=b"DELE 1\r\nDELE 3\r\nQUIT\r\n",
                       capture_output=True, timeout=TIMEOUT)
    assert r.stdout.split(b"\r\n")[-2].startswith(b"+OK"), r.stdout
    assert len(os.listdir(md)) == 1, os.listdir(md)


def fill(md, n):
    md.mkdir()
    for i in range(n):
        (md / ("m%04d" % i)).write_bytes(b"Subject: %d\n\nbody\n" % i)


def test_max_messages_refused_not_truncated(tmp_path, server):
    """101 messages with --max-messages 100: STAT (the first use in the
    open mode) and a login both get -ERR [SYS/PERM] maildrop too large,
    and the session goes on; 100 messages are served whole."""
    md = tmp_path / "big"
    fill(md, 101)
    srv = server(md, "--max-messages", "100")
    c = Conn(srv.port)
    assert c.cmd("STAT") == b"-ERR [SYS/PERM] maildrop too large"
    assert c.cmd("USER x") == b"+OK send PASS"
    assert c.cmd("PASS y") == b"-ERR [SYS/PERM] maildrop too large"
    assert c.cmd("NOOP").startswith(b"-ERR")    # still not in TRANSACTION
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
    assert sorted(os.listdir(md)) == ["m%04d" % i for i in range(101)]
    assert b"more than 100 messages" in srv.output()

    os.unlink(md / "m0100")
    c = Conn(srv.port)
    status = c.cmd("STAT")
    assert status.startswith(b"+OK 100 "), status
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()


def test_max_messages_stdio(tmp_path):
    """The stdio mode (inetd, Accept=yes) refuses the same way."""
    md = tmp_path / "big"
    fill(md, 11)
    r = subprocess.run([POP3D, "--max-messages", "10", str(md)],
                       input=b"LIST\r\nQUIT\r\n", capture_output=True,
                       timeout=TIMEOUT)
    assert r.stdout == (b"+OK pop3d ready\r\n"
                        b"-ERR [SYS/PERM] maildrop too large\r\n"
                        b"+OK pop3d signing off\r\n")


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1000001"])
def test_max_messages_bad_values(tmp_path, bad):
    md = tmp_path / "md"
    md.mkdir()
    r = subprocess.run([POP3D, "--max-messages", bad, str(md)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 64
    assert b"--max-messages" in r.stderr
