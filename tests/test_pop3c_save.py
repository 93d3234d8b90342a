"""pop3c's saved files: named by the unique-id when the server has UIDL
(made safe, so two messages never share a name and one message saved in
two sessions is one file), N.eml otherwise, and written through tmp/ into
new/ when the download folder is a Maildir.
"""
import socket

from conftest import TIMEOUT
from pop3c_util import (ScriptedServer, client_env, run_pop3c, safe_name,
                        script, wire_retr)

UIDS = {1: b"a/b", 2: b"a%2Fb", 3: b".hidden", 4: b"x" * 71}
NAMES = {1: "a%2Fb.eml", 2: "a%252Fb.eml", 3: "%2Ehidden.eml", 4: "4.eml"}


def body(n):
    return b"Subject: message %d\r\n\r\nbody %d\r\n" % (n, n)


def table():
    t = {b"STAT": [b"+OK 4 400\r\n"]}
    for n, uid in UIDS.items():
        t[b"UIDL %d" % n] = [b"+OK %d %s\r\n" % (n, uid)]
        t[b"RETR %d" % n] = [b"+OK\r\n" + body(n) + b".\r\n"]
    return t


def test_files_named_by_unique_id(tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    cmds = b"STAT\nRETR 1\nRETR 2\nRETR 3\nRETR 4\n"
    srv = ScriptedServer(script(table()))
    status, out, err = run_pop3c(["-d", dl, srv.port], cmds,
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert sorted(p.name for p in dl.iterdir()) == sorted(NAMES.values())
    for n, name in NAMES.items():
        assert (dl / name).read_bytes() == body(n)
    # The UIDL lines are not shown: the output is what the user asked for.
    assert b"UIDL" not in out and b"a/b" not in out
    # A second session: the same messages are the same files.
    (dl / NAMES[1]).write_bytes(b"kept\r\n")
    srv = ScriptedServer(script(table()))
    status, out, err = run_pop3c(["-d", dl, srv.port], cmds,
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert (dl / NAMES[1]).read_bytes() == b"kept\r\n"
    assert err.count(b"already saved as") == 3, err
    assert b"saved to %s/4-1.eml" % str(dl).encode() in err
    assert len(list(dl.iterdir())) == 5


def test_without_uidl_asks_once_and_uses_numbers(tmp_path):
    t = table()
    for n in UIDS:
        del t[b"UIDL %d" % n]
    srv = ScriptedServer(script(t))
    status, out, err = run_pop3c(["-d", tmp_path, srv.port],
                                 b"STAT\nRETR 1\nRETR 2\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"STAT", b"UIDL 1", b"RETR 1", b"RETR 2",
                            b"QUIT"]
    assert (tmp_path / "1.eml").read_bytes() == body(1)
    assert (tmp_path / "2.eml").read_bytes() == body(2)


def wire_uid(port, n):
    """The unique-id pop3d gives message n (open maildrop)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"UIDL %d\r\n" % n)
        line = f.readline()
        s.sendall(b"QUIT\r\n")
    assert line.startswith(b"+OK %d " % n), line
    return line.split()[2].decode()


def test_open_maildrop_first_retr_named_by_unique_id(tmp_path, server,
                                                     maildrop):
    """SPEC pop3c saving: with no login (pop3d serving one maildrop), the
    very first RETR learns UIDL from CAPA and is saved by unique-id."""
    srv = server(maildrop)
    dl = tmp_path / "dl"
    dl.mkdir()
    name = safe_name(wire_uid(srv.port, 1)) + ".eml"
    status, out, err = run_pop3c(["-d", dl, srv.port], b"RETR 1\n",
                                 env=client_env(tmp_path))
    assert status == 0, err
    assert [p.name for p in dl.iterdir()] == [name]
    assert (dl / name).read_bytes() == wire_retr(srv.port, 1)
    # Neither CAPA nor UIDL is shown: only the RETR reply.
    assert b"UIDL" not in out and b"SASL" not in out
    assert out.split(b"\n")[1].startswith(b"+OK")


def test_capa_asked_once_before_first_retr(tmp_path):
    """No login known: CAPA once; UIDL n only when CAPA lists UIDL."""
    t = table()
    t[b"CAPA"] = [b"+OK\r\nTOP\r\nUIDL\r\n.\r\n"]
    srv = ScriptedServer(script(t))
    status, out, err = run_pop3c(["-d", tmp_path, srv.port],
                                 b"RETR 1\nRETR 2\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"CAPA", b"UIDL 1", b"RETR 1", b"UIDL 2",
                            b"RETR 2", b"QUIT"]
    assert (tmp_path / NAMES[1]).read_bytes() == body(1)
    assert b"TOP" not in out
    t[b"CAPA"] = [b"+OK\r\nTOP\r\nUIDLX\r\n.\r\n"]
    srv = ScriptedServer(script(t))
    (tmp_path / "x").mkdir()
    status, out, err = run_pop3c(["-d", tmp_path / "x", srv.port],
                                 b"RETR 1\nRETR 2\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    # RETR 1 went through: a login is known, so UIDL is tried as ever.
    assert srv.received == [b"CAPA", b"RETR 1", b"UIDL 2", b"RETR 2",
                            b"QUIT"]
    assert (tmp_path / "x" / "1.eml").read_bytes() == body(1)
    assert (tmp_path / "x" / NAMES[2]).read_bytes() == body(2)


def test_maildir_tmp_then_new(tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / NAMES[2]).write_bytes(b"read already\r\n")
    t = table()
    t[b"RETR 3"] = [b"+OK\r\n" + b"y" * 200000]	# never ends
    t[b"LIST 3"] = [b"+OK 3 100\r\n"]
    srv = ScriptedServer(script(t))
    status, out, err = run_pop3c(["-d", md, srv.port],
                                 b"STAT\nRETR 1\nRETR 2\nLIST 3\nRETR 3\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 1			# RETR 3 went past its size
    assert (md / "new" / NAMES[1]).read_bytes() == body(1)
    assert b"saved to %s/new/%s" % (str(md).encode(),
                                    NAMES[1].encode()) in err
    # In cur/ already (seen by a mail reader): not saved again.
    assert b"already saved as %s/new/%s" % (str(md).encode(),
                                            NAMES[2].encode()) in err
    assert sorted(p.name for p in (md / "new").iterdir()) == [NAMES[1]]
    assert list((md / "tmp").iterdir()) == []
    assert (md / "cur" / NAMES[2]).read_bytes() == b"read already\r\n"
