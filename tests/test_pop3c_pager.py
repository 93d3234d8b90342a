"""pop3c's pager: on a terminal (tmux), a reply taller than the screen goes
through $PAGER with control characters already made visible, while the
saved file keeps the exact bytes; a short reply, --no-pager and script
mode (no terminal) never start it.
"""
import os
import time

import pytest

from conftest import TIMEOUT
from pop3c_util import ScriptedServer, client_env, run_pop3c, script

# The tmux pane is 50 rows high.
TALL = b"".join(b"line %d\r\n" % i for i in range(1, 121))
BODY = b"Subject: tall\r\n\r\n\x1b]0;owned\x07\x1b[2J" + TALL
SHORT = b"Subject: short\r\n\r\nonly line\r\n"


def recording_pager(tmp_path):
    """A pager that writes what it received to a file (named when done)."""
    rec = tmp_path / "paged"
    sh = tmp_path / "pager.sh"
    sh.write_text("#!/bin/sh\ncat > %s.part && mv %s.part %s\n"
                  % (rec, rec, rec))
    sh.chmod(0o755)
    return rec, str(sh)


def server():
    return ScriptedServer(script({
        b"RETR 1": [b"+OK %d octets\r\n" % len(BODY), BODY, b".\r\n"],
        b"RETR 2": [b"+OK %d octets\r\n" % len(SHORT), SHORT, b".\r\n"],
    }))


def wait_file(path, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "%s never written" % path
        time.sleep(0.05)


def test_tmux_tall_reply_goes_through_pager_made_visible(tmp_path, term):
    rec, pager = recording_pager(tmp_path)
    srv = server()
    dl = tmp_path / "dl"
    dl.mkdir()
    t = term(["-d", dl, srv.port], client_env(tmp_path, PAGER=pager))
    t.wait(r">$")
    t.text("RETR 1")
    t.keys("Enter")
    t.wait(r"saved to .*1\.eml \(%d octets\)" % len(BODY))
    wait_file(rec)
    paged = rec.read_bytes()
    # The body as the terminal would show it: CRLF as LF, ESC and BEL
    # made visible, nothing raw.
    assert paged == (b"Subject: tall\n\n^[]0;owned^G^[[2J" +
                     TALL.replace(b"\r\n", b"\n")), paged[:200]
    assert b"\x1b" not in paged and b"\r" not in paged
    # The saved file keeps the exact bytes.
    assert (dl / "1.eml").read_bytes() == BODY
    # The status line was shown on the terminal, the body was not.
    assert t.count(r"^\+OK %d octets$" % len(BODY)) == 1
    assert t.count(r"^line 100$") == 0
    t.text("RETR 2")			# a short reply: on the screen
    t.keys("Enter")
    t.wait(r"^only line$")
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()
    assert rec.read_bytes() == paged	# not paged again


def test_tmux_no_pager_shows_tall_reply_directly(tmp_path, term):
    rec, pager = recording_pager(tmp_path)
    srv = server()
    t = term(["--no-pager", "-d", tmp_path, srv.port],
             client_env(tmp_path, PAGER=pager))
    t.wait(r">$")
    t.text("RETR 1")
    t.keys("Enter")
    t.wait(r"^line 120$")
    t.wait(r"saved to ")
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()
    assert not rec.exists() and not (tmp_path / "paged.part").exists()


def test_script_mode_never_pages(tmp_path):
    rec, pager = recording_pager(tmp_path)
    srv = server()
    status, out, err = run_pop3c(["-d", tmp_path, srv.port], b"RETR 1\n",
                                 env=client_env(tmp_path, PAGER=pager))
    srv.join()
    assert status == 0, err
    assert b"line 120\n" in out
    assert not rec.exists()
