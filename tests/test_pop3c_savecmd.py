"""pop3c's `save N [FILE]`: the message saved byte for byte without being
shown (in the download folder under the name RETR would choose, or as
FILE, never replacing one), a note on stderr at the end, a progress line
redrawn in place on a terminal, and message numbers completed for it.
"""
import pytest

from pop3c_util import Pause, ScriptedServer, client_env, run_pop3c, script

BODY = (b"Subject: kept\r\n\r\n\x1b[2Jsecret body\r\n..stuffed\r\n"
        b"last\r\n")
WIRE = BODY.replace(b"\r\n..", b"\r\n...")
EXACT = BODY


def table():
    return {
        b"STAT": [b"+OK 1 %d\r\n" % len(EXACT)],
        b"RETR 1": [b"+OK %d octets\r\n" % len(EXACT), WIRE, b".\r\n"],
        b"RETR 9": [b"-ERR no such message\r\n"],
    }


def test_pipe_save_writes_exact_bytes_and_shows_nothing(tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    srv = ScriptedServer(script(table()))
    status, out, err = run_pop3c(["-d", dl, srv.port],
                                 b"save 1\nsave 1 mine.eml\n",
                                 env=client_env(tmp_path), cwd=tmp_path)
    srv.join()
    assert status == 0, err
    assert (dl / "1.eml").read_bytes() == EXACT
    assert (tmp_path / "mine.eml").read_bytes() == EXACT
    # Nothing of the message on stdout: no body, no status line.
    assert b"secret" not in out and b"octets" not in out, out
    assert b"saved to %s/1.eml (%d octets)" % (str(dl).encode(),
                                               len(EXACT)) in err, err
    assert b"saved to mine.eml (%d octets)" % len(EXACT) in err, err
    # Not logged in and no UIDL in CAPA (asked once): no UIDL asked.
    assert srv.received == [b"CAPA", b"RETR 1", b"RETR 1", b"QUIT"]


def test_save_never_replaces_a_file_and_cleans_up_after_err(tmp_path):
    (tmp_path / "old.eml").write_bytes(b"precious\r\n")
    srv = ScriptedServer(script(table()))
    status, out, err = run_pop3c([srv.port],
                                 b"save 1 old.eml\nsave 9 new.eml\n"
                                 b"save x\nNOOP\n",
                                 env=client_env(tmp_path), cwd=tmp_path)
    srv.join()
    assert status == 0, err
    assert (tmp_path / "old.eml").read_bytes() == b"precious\r\n"
    assert b"cannot save to old.eml: File exists (not replaced)" in err, err
    # -ERR: shown, and the file made for it removed.
    assert b"-ERR no such message\n" in out
    assert not (tmp_path / "new.eml").exists()
    assert b"bad message number 'x'" in err
    assert srv.received == [b"RETR 9", b"NOOP", b"QUIT"]


def test_save_with_errexit_stops_at_err(tmp_path):
    srv = ScriptedServer(script(table()))
    status, out, err = run_pop3c(["-e", srv.port], b"save 9\nsave 1\n",
                                 env=client_env(tmp_path), cwd=tmp_path)
    srv.join()
    assert status == 2, err
    assert srv.received == [b"CAPA", b"RETR 9", b"QUIT"]


def test_tmux_save_progress_and_completion(tmp_path, term):
    size = 400 * 1024
    line = b"p" * 1022 + b"\r\n"
    body = line * (size // len(line))
    half = len(body) // 2
    srv = ScriptedServer(script({
        b"STAT": [b"+OK 2 %d\r\n" % (2 * len(body))],
        b"LIST 2": [b"+OK 2 %d\r\n" % len(body)],
        b"DELE 1": [b"+OK marked\r\n"],
        b"RSET": [b"+OK unmarked\r\n"],
        b"RETR 2": [b"+OK\r\n", body[:half], Pause(3), body[half:],
                    b".\r\n"],
    }))
    dl = tmp_path / "dl"
    dl.mkdir()
    t = term(["-d", dl, srv.port], client_env(tmp_path))
    t.wait(r">$")
    t.text("STAT")
    t.keys("Enter")
    t.wait(r"^\+OK 2 ")
    t.text("LIST 2")
    t.keys("Enter")
    t.wait(r"^\+OK 2 %d$" % len(body))
    t.text("DELE 1")
    t.keys("Enter")
    t.wait(r"^\+OK marked$")
    # Completion: the command, then the one message not marked.
    t.text("sa")
    t.keys("Tab")
    t.wait(r"\*1> save$")
    t.keys("Tab")
    t.wait(r"\*1> save 2$")
    t.keys("Enter")
    t.wait(r"saving message 2: \d+ of %d octets \(\d+%%\)" % len(body),
           timeout=30)
    t.wait(r"^saved to %s/2\.eml \(%d octets\)$" % (dl, len(body)),
           timeout=30)
    # The progress line was cleared, and the body never shown.
    assert t.count(r"saving message") == 0
    assert t.count(r"pppp") == 0
    assert (dl / "2.eml").read_bytes() == body
    t.text("RSET")
    t.keys("Enter")
    t.wait(r"^\+OK unmarked$")
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()
