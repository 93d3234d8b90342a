"""pop3c against a hostile server or hostile mail: escape sequences made
visible on screen and in output but saved exactly, "+ " continuations only
inside AUTH, bounded message numbers and message sizes, Ctrl-C in the
middle of a long reply.  Scripted servers that record what they receive;
the terminal tests run pop3c in tmux.
"""
import os
import re
import time

import pytest

from conftest import TIMEOUT
from pop3c_util import (CLOSE, ScriptedServer, client_env, outside_address,
                        param, peak_rss_kib, run_pop3c, script)

SAVE_MARGIN = 64 * 1024

EVIL = (b"\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b]0;pwned\x07\x9b31m"
        b"\xc2\x9b1m\x7f\x00\x08bell\x07 caf\xc3\xa9\r")
EVIL_SHOWN = (b"^[]52;c;ZXZpbA==^G^[[2J^[]0;pwned^G\\x9b31m"
              b"\\u009b1m^?^@^Hbell^G caf\xc3\xa9^M")


def evil_server():
    body = b"Subject: " + EVIL + b"\r\n\r\n" + EVIL + b"\r\n..dot\r\n"
    srv = ScriptedServer(script({
        b"RETR 1": [b"+OK " + EVIL + b"\r\n" + body + b".\r\n"],
        b"TOP 1 0": [b"+OK\r\n" + body + b".\r\n"],
        b"CAPA": [b"+OK\r\n" + EVIL + b"\r\n.\r\n"],
        b"NOOP": [b"-ERR " + EVIL + b"\r\n"],
    }), greeting=b"+OK " + EVIL + b"\r\n")
    return srv, body.replace(b"\r\n..", b"\r\n.")


def test_escapes_made_visible_in_output_saved_exactly(tmp_path):
    srv, saved = evil_server()
    status, out, err = run_pop3c(["-d", tmp_path, srv.port],
                                 b"RETR 1\nTOP 1 0\nCAPA\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    for bad in (b"\x1b", b"\x07", b"\x9b", b"\x7f", b"\x00", b"\x08",
                b"\r"):
        assert bad not in out and bad not in err, bad
    # Greeting, status lines, bodies (RETR, TOP, CAPA), -ERR text.
    assert out.count(EVIL_SHOWN) == 1 + 1 + 2 + 2 + 1 + 1, out
    assert b"caf\xc3\xa9" in out		# UTF-8 stays readable
    assert (tmp_path / "1.eml").read_bytes() == saved


def test_tmux_escapes_do_not_reach_the_terminal(tmp_path, term):
    srv, saved = evil_server()
    t = term(["-d", tmp_path, srv.port], client_env(tmp_path))
    t.wait(r">$")
    title = t.title()
    t.text("RETR 1")
    t.keys("Enter")
    t.wait(r"saved to ")
    t.text("NOOP")
    t.keys("Enter")
    t.wait(r"^-ERR \^\[\]52;c;ZXZpbA==\^G")
    screen = t.screen()
    # Nothing cleared the screen: the greeting is still there, shown.
    assert re.search(r"^\+OK \^\[\]52;c;ZXZpbA==\^G\^\[\[2J\^\[\]0;pwned",
                     screen, re.M), screen
    assert screen.count("^[]0;pwned^G") == 5, screen
    assert t.title() == title and "pwned" not in t.title()
    assert (tmp_path / "1.eml").read_bytes() == saved
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()


def test_continuation_outside_auth_is_a_protocol_error(tmp_path):
    addr = outside_address()
    if addr is None:
        pytest.skip("no address but loopback")
    srv = ScriptedServer(script({
        b"USER dana": [b"+ \r\n"],
        b"NOOP": [b"+OK\r\n"],
    }), host=addr)
    # Not loopback and no terminal: a password must not be sent.
    status, out, err = run_pop3c([addr, srv.port],
                                 b"USER dana\nPASS secret\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"USER dana", b"NOOP", b"QUIT"]
    assert b"protocol error" in err and b"outside AUTH" in err
    assert b"not sending a password unencrypted" in err


def test_continuation_inside_auth_still_works(tmp_path):
    srv = ScriptedServer(script({
        b"AUTH PLAIN": [b"+ \r\n"],
        b"AGRhbmEAc2VjcmV0": [b"+ more\r\n"],
        b"": [b"+OK logged in\r\n"],
        b"STAT": [b"+ \r\n"],
        b"NOOP": [b"+OK\r\n"],
    }))
    status, out, err = run_pop3c([srv.port],
                                 b"AUTH PLAIN\nAGRhbmEAc2VjcmV0\n\nSTAT\n"
                                 b"NOOP\n", env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"AUTH PLAIN", b"AGRhbmEAc2VjcmV0", b"",
                            b"STAT", b"NOOP", b"QUIT"]
    assert err.count(b"protocol error") == 1	# the "+ " to STAT


def test_tmux_auth_response_not_echoed(tmp_path, term):
    srv = ScriptedServer(script({
        b"AUTH PLAIN": [b"+ \r\n"],
        b"AGRhbmEAc2VjcmV0": [b"+OK logged in\r\n"],
    }))
    env = client_env(tmp_path)
    t = term([srv.port], env)
    t.wait(r">$")
    t.text("AUTH PLAIN")
    t.keys("Enter")
    t.wait(r"^\+$")
    t.wait(r"not shown\)$")
    t.text("AGRhbmEAc2VjcmV0")
    t.keys("Enter")
    t.wait(r"^\+OK logged in$")
    assert "AGRhbmEAc2VjcmV0" not in t.screen()
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()
    assert srv.received == [b"AUTH PLAIN", b"AGRhbmEAc2VjcmV0", b"QUIT"]
    hist = (tmp_path / "state" / "pop3c" / "history").read_bytes()
    assert b"AGRhbm" not in hist


def test_tmux_huge_list_number_stays_responsive(tmp_path, term):
    srv = ScriptedServer(script({
        b"LIST": [b"+OK\r\n1 100\r\n18446744073709551 200\r\n.\r\n"],
        b"NOOP": [b"+OK still here\r\n"],
    }))
    t = term([srv.port], client_env(tmp_path))
    t.wait(r">$")
    pid = t.pid()
    t.text("LIST")
    t.keys("Enter")
    t.wait(r"^18446744073709551 200\n")
    t.wait(r"beyond 1000000: message numbers not learned")
    t.text("RETR ")
    t.keys("Tab", "Tab")
    t.keys("C-u")
    t.text("NOOP")
    t.keys("Enter")
    t.wait(r"^\+OK still here$", timeout=TIMEOUT)
    assert peak_rss_kib(pid) < 64 * 1024
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()


def test_never_ending_retr_stops_at_the_margin(tmp_path):
    chunk = b"x" * 1000 + b"\r\n"
    srv = ScriptedServer(script({
        b"LIST 1": [b"+OK 1 5000\r\n"],
        b"RETR 1": [b"+OK\r\n"] + [chunk * 10] * 30,
    }))
    t0 = time.monotonic()
    status, out, err = run_pop3c(["-t", "60", "-d", tmp_path, srv.port],
                                 b"LIST 1\nRETR 1\n",
                                 env=client_env(tmp_path), timeout=60)
    srv.join()
    assert status == 1, err
    assert time.monotonic() - t0 < 50		# not the read timeout
    assert b"went on past %d octets" % (5000 + SAVE_MARGIN) in err, err
    assert list(tmp_path.glob("*.eml")) == []
    # What was shown stops at the bound, give or take a read.
    assert len(out) < 5000 + SAVE_MARGIN + 8192


def test_max_size_bounds_retr_without_list(tmp_path):
    chunk = b"y" * 1000 + b"\r\n"
    srv = ScriptedServer(script({
        b"RETR 1": [b"+OK\r\n"] + [chunk * 10] * 30,
    }))
    status, out, err = run_pop3c(["--max-size", "100K", "-t", "60", "-d",
                                  tmp_path, srv.port], b"RETR 1\n",
                                 env=client_env(tmp_path), timeout=60)
    srv.join()
    assert status == 1, err
    assert b"went on past 102400 octets (--max-size)" in err, err
    assert list(tmp_path.glob("*.eml")) == []


def test_tmux_ctrl_c_in_a_20_mib_retr(tmp_path, term):
    size = 20 * 1024 * 1024
    line = b"z" * 98 + b"\r\n"
    body = line * (size // len(line))
    srv = ScriptedServer(script({
        b"RETR 1": [b"+OK %d octets\r\n" % len(body), body, b".\r\n"],
        b"STAT": [b"+OK 1 %d\r\n" % len(body)],
    }))
    dl = tmp_path / "dl"
    dl.mkdir()
    t = term(["-d", dl, srv.port], client_env(tmp_path))
    t.wait(r">$")
    t.text("RETR 1")
    t.keys("Enter")
    t.wait(r"^z{98}$")
    t.keys("C-c")
    t.wait(r"interrupted: the rest of the reply was dropped", timeout=60)
    t.wait(r">$", timeout=60)
    t.text("STAT")
    t.keys("Enter")
    t.wait(r"^\+OK 1 %d$" % len(body), timeout=60)
    assert list(dl.iterdir()) == []
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    srv.join()
    assert srv.received == [b"CAPA", b"RETR 1", b"STAT", b"QUIT"]
