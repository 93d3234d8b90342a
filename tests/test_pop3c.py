"""pop3c end to end: usage, connecting, every kind of reply from a scripted
server that records what it receives, piped-stdin runs compared byte for
byte, and the readline interface in a real terminal (tmux) against pop3d.
"""
import os
import re
import shutil
import socket

import pytest

from conftest import POP3C, TIMEOUT, free_port
from pop3c_util import (CLOSE, Bytewise, ScriptedServer, client_env, param,
                        peak_rss_kib, run_pop3c, safe_name, wire_retr)

HISTORY_MAX = param("HISTORY_MAX")
CLIENT_LINE_MAX = param("CLIENT_LINE_MAX")

# ---- usage -----------------------------------------------------------


@pytest.mark.parametrize("args", [
    [], ["1", "2", "3"], ["0"], ["65536"], ["x/110"], ["-1"], ["110 "],
    ["-t", "0", "110"], ["-t", "x", "110"], ["--bogus", "110"],
    ["", "110"],
])
def test_bad_usage_exits_64(tmp_path, args):
    status, out, err = run_pop3c(args, env=client_env(tmp_path))
    assert status == 64
    assert out == b""
    assert b"usage: pop3c" in err


def test_help_and_version(tmp_path):
    status, out, err = run_pop3c(["--help"], env=client_env(tmp_path))
    assert status == 0 and err == b""
    assert out.startswith(b"usage: pop3c [-d DIR] [-t SECONDS] [-u USER] "
                          b"[--tls | --starttls]\n")
    for opt in (b"--tls", b"--starttls", b"--cafile", b"--insecure"):
        assert opt in out
    status, out, err = run_pop3c(["--version"], env=client_env(tmp_path))
    assert status == 0 and re.fullmatch(rb"pop3c \d+\.\d+\S*\n", out)


def test_missing_download_folder_exits_64(tmp_path):
    srv = ScriptedServer()
    status, out, err = run_pop3c(["-d", tmp_path / "nope", srv.port],
                                 env=client_env(tmp_path))
    assert status == 64
    assert b"download folder" in err and b"No such file" in err
    srv.sock.close()


# ---- connecting --------------------------------------------------------


def test_refused_port_exits_1_with_message(tmp_path):
    port = free_port()
    status, out, err = run_pop3c(["127.0.0.1", port],
                                 env=client_env(tmp_path))
    assert status == 1
    assert out == b""
    assert err == (b"pop3c: cannot connect to 127.0.0.1 port %d: "
                   b"Connection refused\n" % port)


def test_unknown_host_exits_1_with_message(tmp_path):
    status, out, err = run_pop3c(["no-such-host.invalid", "110"],
                                 env=client_env(tmp_path))
    assert status == 1
    assert err.startswith(b"pop3c: cannot resolve host no-such-host.invalid")


def test_greeting_err_exits_1(tmp_path):
    srv = ScriptedServer(greeting=b"-ERR [SYS/TEMP] too busy\r\n")
    status, out, err = run_pop3c([srv.port], env=client_env(tmp_path))
    srv.join()
    assert status == 1
    assert out == b"-ERR [SYS/TEMP] too busy\n"
    assert b"did not accept" in err


@pytest.mark.parametrize("hostargs", [[], ["localhost"], ["127.0.0.1"],
                                      ["::1"]])
def test_host_forms_against_pop3d(tmp_path, server, maildrop, hostargs):
    srv = server(maildrop)
    status, out, err = run_pop3c([*hostargs, srv.port], b"STAT\nQUIT\n",
                                 env=client_env(tmp_path))
    assert status == 0, err
    lines = out.split(b"\n")
    assert lines[0].startswith(b"+OK")
    assert lines[1] == b"+OK 7 16049"
    assert lines[2].startswith(b"+OK") and lines[3] == b""


# ---- piped runs against pop3d, byte for byte ----------------------------


def expected_from_pop3d(port, commands):
    """What pop3c should print for these commands: each reply as the wire
    has it, un-stuffed, with LF line ends (the greeting is left out)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        f = s.makefile("rb")
        f.readline()
        for cmd, multi in commands:
            s.sendall(cmd + b"\r\n")
            status = f.readline()
            assert status.endswith(b"\r\n")
            out += status[:-2] + b"\n"
            if multi and status.startswith(b"+OK"):
                while True:
                    line = f.readline()
                    assert line.endswith(b"\r\n")
                    if line == b".\r\n":
                        break
                    if line.startswith(b"."):
                        line = line[1:]
                    out += line[:-2] + b"\n"
    return out


def test_piped_session_matches_wire(tmp_path, server, maildrop):
    srv = server(maildrop)
    dl = tmp_path / "dl"
    dl.mkdir()
    cmds = [(b"STAT", 0), (b"list", 1), (b"LIST 2", 0), (b"UIDL", 1),
            (b"UIDL 3", 0), (b"TOP 3 1", 1), (b"CAPA", 1), (b"LIST 99", 0),
            (b"RETR 99", 0), (b"NOOP", 0), (b"RETR 3", 1)]
    expected = expected_from_pop3d(srv.port, cmds)
    size = len(wire_retr(srv.port, 3))
    status, out, err = run_pop3c(
        ["-d", dl, srv.port], b"".join(c + b"\n" for c, _ in cmds),
        env=client_env(tmp_path))
    assert status == 0, err
    greeting, rest = out.split(b"\n", 1)
    assert greeting.startswith(b"+OK")
    assert rest.startswith(expected)
    assert re.fullmatch(rb"\+OK[^\n]*\n", rest[len(expected):])
    assert b"\x1b" not in out and b"> " not in out	# no prompt, no codes
    assert (dl / "3.eml").read_bytes() == wire_retr(srv.port, 3)
    # Notes go to stderr, apart from the text.
    assert err == b"saved to %s/3.eml (%d octets)\n" % (str(dl).encode(),
                                                        size)


def uidl(port, n):
    """pop3d's unique-id of message n."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"UIDL %d\r\nQUIT\r\n" % n)
        line = f.readline().split()
        assert line[0] == b"+OK" and line[1] == b"%d" % n
        return line[2].decode()


def dot_message(port):
    """The number of the sample with dot lines (numbers follow readdir)."""
    for n in range(1, 8):
        if b"\r\n..hidden-cache\r\n" in wire_retr(port, n):
            return n
    raise AssertionError("no sample with dot lines")


def test_retr_saves_dot_lines_byte_equal(tmp_path, server, maildrop):
    srv = server(maildrop)
    n = dot_message(srv.port)
    status, out, err = run_pop3c([srv.port], b"RETR %d\nRETR %d\n" % (n, n),
                                 env=client_env(tmp_path), cwd=tmp_path)
    assert status == 0, err
    wire = wire_retr(srv.port, n)
    # That sample has lines starting with dots, and a lone dot.
    assert b"\r\n.\r\n" in wire
    # No login is needed, yet CAPA lists UIDL: even the first RETR is
    # named by the unique-id, and the second one finds it saved.
    uid = safe_name(uidl(srv.port, n))
    assert not (tmp_path / ("%d.eml" % n)).exists()
    assert (tmp_path / (uid + ".eml")).read_bytes() == wire
    assert b"saved to ./%s.eml (%d octets)\n" % (uid.encode(),
                                                 len(wire)) in err
    assert b"already saved as" in err
    assert b"\n..hidden-cache\n" in out and b"\n.\n" in out


# ---- scripted server ---------------------------------------------------


def script(table):
    """A respond function from {command: [actions]}; QUIT says bye."""
    def respond(line):
        if line in table:
            return table[line]
        if line.upper() == b"QUIT":
            return [b"+OK bye\r\n", CLOSE]
        return [b"-ERR unexpected %s\r\n" % line]
    return respond


def test_err_to_list_and_retr_is_one_line(tmp_path):
    srv = ScriptedServer(script({
        b"LIST": [b"-ERR [SYS/TEMP] maildrop busy\r\n"],
        b"RETR 1": [b"-ERR no such message\r\n"],
        b"TOP 1 2": [b"-ERR no such message\r\n"],
        b"CAPA": [b"-ERR what?\r\n"],
        b"NOOP": [b"+OK\r\n"],
    }))
    status, out, err = run_pop3c(
        [srv.port], b"LIST\nRETR 1\nTOP 1 2\nCAPA\nNOOP\n",
        env=client_env(tmp_path), cwd=tmp_path)
    srv.join()
    assert status == 0, err
    assert out == (b"+OK scripted\n-ERR [SYS/TEMP] maildrop busy\n"
                   b"-ERR no such message\n-ERR no such message\n"
                   b"-ERR what?\n+OK\n+OK bye\n")
    # CAPA (not shown) once before the first RETR: no login is known.
    assert srv.received == [b"LIST", b"CAPA", b"RETR 1", b"TOP 1 2", b"CAPA",
                            b"NOOP", b"QUIT"]
    assert not list(tmp_path.glob("*.eml"))


def test_single_line_forms_do_not_wait_for_a_dot(tmp_path):
    # LIST n, UIDL n, STAT, DELE: one line each, whatever the case.
    srv = ScriptedServer(script({
        b"list 1": [b"+OK 1 120\r\n"], b"UIDL 1": [b"+OK 1 abc\r\n"],
        b"STAT": [b"+OK 2 240\r\n"], b"DELE 1": [b"+OK marked\r\n"],
        b"XTND": [b"+OK whatever\r\n"],
    }))
    status, out, err = run_pop3c(
        [srv.port], b"list 1\nUIDL 1\nSTAT\nDELE 1\nXTND\n",
        env=client_env(tmp_path), timeout=TIMEOUT)
    srv.join()
    assert status == 0, err
    assert out == (b"+OK scripted\n+OK 1 120\n+OK 1 abc\n+OK 2 240\n"
                   b"+OK marked\n+OK whatever\n+OK bye\n")


DOTTY = (b"+OK 64 octets\r\n"
         b"Subject: dots\r\n\r\n"
         b"..hidden\r\n...three\r\n..\r\nplain\r\n.\r\n")
DOTTY_TEXT = b"Subject: dots\r\n\r\n.hidden\r\n..three\r\n.\r\nplain\r\n"


@pytest.mark.parametrize("bytewise", [False, True])
def test_stuffed_lines_unstuffed_on_screen_and_file(tmp_path, bytewise):
    reply = Bytewise(DOTTY) if bytewise else DOTTY
    srv = ScriptedServer(script({b"RETR 2": [reply]}),
                         greeting=Bytewise(b"+OK slow\r\n") if bytewise
                         else b"+OK scripted\r\n")
    dl = tmp_path / "dl"
    dl.mkdir()
    status, out, err = run_pop3c(["-d", dl, "127.0.0.1", srv.port],
                                 b"RETR 2\n", env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    greet = b"+OK slow\n" if bytewise else b"+OK scripted\n"
    assert out == (greet + b"+OK 64 octets\n" +
                   DOTTY_TEXT.replace(b"\r\n", b"\n") + b"+OK bye\n")
    assert err == b"saved to %s/2.eml (%d octets)\n" % (
        str(dl).encode(), len(DOTTY_TEXT))
    assert (dl / "2.eml").read_bytes() == DOTTY_TEXT
    assert srv.received == [b"CAPA", b"RETR 2", b"QUIT"]


def test_list_bytewise_and_joined(tmp_path):
    listing = b"+OK 3 messages\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n"
    srv = ScriptedServer(script({
        b"LIST": [Bytewise(listing)],
        b"UIDL": [b"+OK\r\n1 a\r\n", b"2 b\r\n.", b"\r\n"],
        b"CAPA": [b"+OK\r\nTOP\r\n.\r\n"],
    }))
    status, out, err = run_pop3c([srv.port], b"LIST\nUIDL\nCAPA\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert out == (b"+OK scripted\n+OK 3 messages\n1 100\n2 200\n3 300\n"
                   b"+OK\n1 a\n2 b\n+OK\nTOP\n+OK bye\n")


def test_close_in_middle_of_multiline_exits_1(tmp_path):
    srv = ScriptedServer(script({
        b"RETR 1": [b"+OK 100 octets\r\nSubject: x\r\n\r\nhalf a li", CLOSE],
    }))
    status, out, err = run_pop3c([srv.port], b"RETR 1\nNOOP\n",
                                 env=client_env(tmp_path), cwd=tmp_path)
    srv.join()
    assert status == 1
    assert out == b"+OK scripted\n+OK 100 octets\nSubject: x\n\nhalf a li\n"
    assert (b"pop3c: connection closed by the server in the middle of a "
            b"reply\n") in err
    assert not list(tmp_path.glob("*.eml"))	# no partial message kept
    assert srv.received == [b"CAPA", b"RETR 1"]


def test_close_before_status_exits_1(tmp_path):
    srv = ScriptedServer(script({b"NOOP": [CLOSE]}))
    status, out, err = run_pop3c([srv.port], b"NOOP\nSTAT\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 1
    assert out == b"+OK scripted\n"
    assert err == b"pop3c: connection closed by the server\n"


def test_garbage_status_line_exits_1(tmp_path):
    srv = ScriptedServer(script({b"NOOP": [b"HELLO\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"NOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 1
    assert b"does not begin with +OK or -ERR" in err


def test_silent_server_times_out(tmp_path):
    srv = ScriptedServer(script({b"NOOP": []}))
    status, out, err = run_pop3c(["-t", "1", srv.port], b"NOOP\n",
                                 env=client_env(tmp_path))
    srv.sock.close()
    assert status == 1
    assert err == b"pop3c: no reply from the server for 1 seconds\n"


def test_long_status_line_is_cut_and_session_goes_on(tmp_path):
    long = b"+OK " + b"x" * 10000
    srv = ScriptedServer(script({b"NOOP": [long + b"\r\n"],
                                 b"STAT": [b"+OK 0 0\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"NOOP\nSTAT\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    lines = out.split(b"\n")
    assert lines[1] == long[:CLIENT_LINE_MAX - 1]
    assert lines[2:] == [b"+OK 0 0", b"+OK bye", b""]


def test_end_of_input_sends_quit_once(tmp_path):
    srv = ScriptedServer(script({b"NOOP": [b"+OK\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"NOOP\n\n   \n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"NOOP", b"QUIT"]
    srv = ScriptedServer(script({b"NOOP": [b"+OK\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"quit\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"quit"]
    assert out == b"+OK scripted\n+OK bye\n"


def test_crlf_input_and_too_long_command(tmp_path):
    srv = ScriptedServer(script({b"NOOP": [b"+OK\r\n"]}))
    status, out, err = run_pop3c(
        [srv.port], b"NOOP\r\n" + b"X" * 300 + b"\n" + b"N" * 254 + b"\nNOOP",
        env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"NOOP", b"NOOP", b"QUIT"]
    assert err.count(b"command too long") == 2


def test_pass_without_terminal_reads_next_line(tmp_path):
    srv = ScriptedServer(script({b"USER dana": [b"+OK\r\n"],
                                 b"PASS s3cret word": [b"+OK in\r\n"]}))
    status, out, err = run_pop3c(["-u", "dana", srv.port],
                                 b"s3cret word\n", env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"USER dana", b"PASS s3cret word", b"QUIT"]
    assert b"s3cret" not in out and b"s3cret" not in err


def test_stls_refused_by_server_session_goes_on(tmp_path):
    srv = ScriptedServer(script({b"STLS": [b"-ERR not here\r\n"],
                                 b"NOOP": [b"+OK\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"STLS\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0
    assert srv.received == [b"STLS", b"NOOP", b"QUIT"]
    assert b"-ERR not here\n" in out


def test_help_is_local_and_lists_every_command(tmp_path):
    srv = ScriptedServer()
    status, out, err = run_pop3c([srv.port], b"help\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0
    assert srv.received == [b"QUIT"]
    for name in (b"USER", b"PASS", b"STAT", b"LIST", b"UIDL", b"RETR",
                 b"TOP", b"DELE", b"RSET", b"NOOP", b"CAPA", b"QUIT"):
        assert re.search(rb"^  " + name + rb"\b.* \w", out, re.M), name


def test_never_overwrites_existing_file(tmp_path):
    (tmp_path / "1.eml").write_bytes(b"precious\n")
    (tmp_path / "1-1.eml").write_bytes(b"precious too\n")
    srv = ScriptedServer(script({b"RETR 1": [b"+OK\r\nbody\r\n.\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"RETR 1\n",
                                 env=client_env(tmp_path), cwd=tmp_path)
    srv.join()
    assert status == 0, err
    assert (tmp_path / "1.eml").read_bytes() == b"precious\n"
    assert (tmp_path / "1-1.eml").read_bytes() == b"precious too\n"
    assert (tmp_path / "1-2.eml").read_bytes() == b"body\r\n"
    assert b"saved to ./1-2.eml (6 octets)\n" in err


def big_message(size):
    """About size octets of CRLF lines, many starting with a dot."""
    lines, total, i = [], 0, 0
    while total < size:
        line = (b"." if i % 3 == 0 else b"") + b"line %08d " % i + b"y" * 60
        lines.append(line + b"\r\n")
        total += len(lines[-1])
        i += 1
    text = b"".join(lines)
    wire = b"".join((b"." + l if l.startswith(b".") else l) for l in lines)
    return text, wire


def test_ten_mib_retr_streams_in_bounded_memory(tmp_path):
    def run(text, wire, name):
        pid, peak = [], []

        def respond(line):
            if line == b"RETR 1":
                return [b"+OK %d octets\r\n" % len(text) + wire + b".\r\n"]
            if line == b"CAPA":
                return [b"-ERR no CAPA\r\n"]
            # The whole message has gone through: read the client's peak.
            peak.append(peak_rss_kib(pid[0]))
            return [b"+OK bye\r\n", CLOSE]

        srv = ScriptedServer(respond)
        dl = tmp_path / name
        dl.mkdir()
        with open(tmp_path / (name + ".out"), "wb") as f:
            status, _, err = run_pop3c(["-d", dl, srv.port], b"RETR 1\n",
                                       env=client_env(tmp_path), stdout=f,
                                       started=lambda p: pid.append(p.pid),
                                       timeout=60)
        srv.join()
        assert status == 0, err
        assert srv.received == [b"CAPA", b"RETR 1", b"QUIT"]
        assert (dl / "1.eml").read_bytes() == text
        shown = (tmp_path / (name + ".out")).read_bytes()
        assert shown == (b"+OK scripted\n+OK %d octets\n" % len(text) +
                         text.replace(b"\r\n", b"\n") + b"+OK bye\n")
        assert err == b"saved to %s/1.eml (%d octets)\n" % (
            str(dl).encode(), len(text))
        return peak[0]

    small = run(*big_message(1000), "small")
    text, wire = big_message(10 * 1024 * 1024)
    assert len(text) >= 10 * 1024 * 1024 and wire.count(b"\r\n..") > 1000
    big = run(text, wire, "big")
    # The 10 MiB message must not be held in memory.
    assert big - small < 2 * 1024, (small, big)


def test_ipv6_scripted(tmp_path):
    try:
        srv = ScriptedServer(script({b"NOOP": [b"+OK v6\r\n"]}),
                             family=socket.AF_INET6, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    status, out, err = run_pop3c(["::1", srv.port], b"NOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert out == b"+OK scripted\n+OK v6\n+OK bye\n"


# ---- in a terminal (tmux) against pop3d ---------------------------------

pytestmark_tmux = pytest.mark.skipif(shutil.which("tmux") is None,
                                     reason="tmux not installed")


def prompt_re(port):
    # capture-pane drops trailing spaces, so the space is optional
    return r"^(?:\S+@)?localhost:%d(?: \(tls\))?(?: \*\d+)?> ?" % port


@pytestmark_tmux
def test_tmux_completion(tmp_path, server, maildrop, term):
    srv = server(maildrop)
    env = client_env(tmp_path)
    t = term(["-d", tmp_path, srv.port], env)
    p = prompt_re(srv.port)
    t.wait(p + r"$")
    # Before the count is known no numbers (and never file names).
    (tmp_path / "9999-a-file").write_text("x")
    t.text("RETR ")
    t.keys("Tab", "Tab")
    t.text("@")
    t.wait(p + r"RETR @$")
    assert "9999" not in t.screen()
    t.keys("C-u")
    t.text("STA")
    t.keys("Tab")
    t.wait(p + r"STAT$")
    t.keys("Enter")
    t.wait(r"^\+OK 7 16049$")
    t.text("li")
    t.keys("Tab")
    t.wait(p + r"list$")
    t.keys("Enter")
    t.wait(r"^7 \d+$")
    t.text("dele ")
    t.keys("Tab", "Tab")
    t.wait(r"^1\s+2\s+3\s+4\s+5\s+6\s+7\s*$")
    t.text("2")
    t.keys("Enter")
    t.wait(r"^\+OK.*\n" + p + r"$")
    t.text("RE")
    t.keys("Tab")
    t.wait(p + r"RETR$")
    t.keys("Tab", "Tab")
    t.wait(r"^1\s+3\s+4\s+5\s+6\s+7\s*$")	# 2 is marked deleted
    t.text("5")
    t.keys("Tab")
    t.text("x")
    t.wait(p + r"RETR 5 x$")	# a unique number gets its space
    t.keys("C-u")
    t.text("RSET")
    t.keys("Enter")
    t.text("TOP ")
    t.keys("Tab", "Tab")
    t.wait(r"^1\s+2\s+3\s+4\s+5\s+6\s+7\s*$")
    t.keys("C-u", "C-d")
    t.wait(r"^EXIT=0$")


@pytestmark_tmux
def test_tmux_history_recall_persist_and_no_pass(tmp_path, server, maildrop,
                                                 term):
    srv = server(maildrop)
    env = client_env(tmp_path)
    p = prompt_re(srv.port)
    t = term(["-u", "dana", "-d", tmp_path, srv.port], env)
    t.wait(r"^Password: ?$")
    t.text("hunter2")
    t.keys("Enter")
    t.wait(r"^\+OK.*\n" + p + r"$")
    t.text("NOOP")
    t.keys("Enter")
    t.wait(p + r"NOOP\n\+OK.*\n" + p + "$")
    t.keys("Up")
    t.wait(p + r"NOOP$")			# Up-arrow recall
    t.keys("Enter")
    t.wait(r"(NOOP\n\+OK.*\n[^\n]*){2}" + p + "$")
    t.text("STAT")
    t.keys("Enter")
    t.wait(r"^\+OK 7 16049$")
    t.text("PASS typedsecret")
    t.keys("Enter")
    t.wait(r"PASS typedsecret\n[-+].*\n" + p + "$")
    t.text("PASS")
    t.keys("Enter")
    t.wait(r"^Password: ?$")
    t.text("hidden3")
    t.keys("Enter")
    t.wait(r"Password: ?\n[-+].*\n" + p + "$")
    assert "hunter2" not in t.screen() and "hidden3" not in t.screen()
    t.keys("C-d")
    t.wait(r"^QUIT\n\+OK.*\nEXIT=0$")
    hist = (tmp_path / "state" / "pop3c" / "history").read_text()
    assert hist.splitlines() == ["NOOP", "STAT"]
    assert "PASS" not in hist and "secret" not in hist
    t.close()

    # The next run recalls the last line of the previous one.
    t = term([srv.port], env)
    t.wait(p + "$")
    t.keys("Up")
    t.wait(p + r"STAT$")
    t.keys("Up")
    t.wait(p + r"NOOP$")
    t.keys("Enter")
    t.wait(p + r"NOOP\n\+OK")
    t.keys("C-d")
    t.wait(r"^EXIT=0$")


@pytestmark_tmux
def test_tmux_history_under_home_and_bounded(tmp_path, server, maildrop,
                                             term):
    srv = server(maildrop)
    env = client_env(tmp_path)
    del env["XDG_STATE_HOME"]
    hdir = tmp_path / "home" / ".local" / "state" / "pop3c"
    hdir.mkdir(parents=True)
    (hdir / "history").write_text(
        "".join("NOOP %d\n" % i for i in range(HISTORY_MAX + 300)))
    p = prompt_re(srv.port)
    t = term([srv.port], env)
    t.wait(p + "$")
    t.keys("Up")
    t.wait(p + r"NOOP %d$" % (HISTORY_MAX + 299))
    t.keys("C-u")
    t.text("CAPA")
    t.keys("Enter")
    t.wait(r"^\+OK.*\n(.*\n)*" + p + "$")
    t.keys("C-d")
    t.wait(r"^EXIT=0$")
    lines = (hdir / "history").read_text().splitlines()
    assert len(lines) == HISTORY_MAX
    assert lines[-1] == "CAPA"
    assert not (tmp_path / "state" / "pop3c").exists()


@pytestmark_tmux
def test_tmux_retr_saves_byte_equal_and_ctrl_c(tmp_path, server, maildrop,
                                               term):
    srv = server(maildrop)
    dl = tmp_path / "dl"
    dl.mkdir()
    p = prompt_re(srv.port)
    t = term(["-d", dl, srv.port], client_env(tmp_path))
    t.wait(p + "$")
    t.text("NOOPXYZ")
    t.wait(p + r"NOOPXYZ$")		# typed, before the signal
    t.keys("C-c")				# clears the line
    t.wait(p + r"NOOPXYZ\^C\n" + p + "$")
    n = dot_message(srv.port)
    t.text("RETR %d" % n)
    t.keys("Enter")
    name = safe_name(uidl(srv.port, n)) + ".eml"
    t.wait(r"^saved to %s/%s \(\d+ octets\)\n" % (re.escape(str(dl)),
                                                  re.escape(name)) + p)
    assert (dl / name).read_bytes() == wire_retr(srv.port, n)
    # The file has "..hidden-cache", sent as "...hidden-cache".
    assert t.count(r"^\.\.hidden-cache$") == 1
    assert t.count(r"^\.\.\.hidden") == 0
    t.keys("C-d")
    t.wait(r"^EXIT=0$")


def test_sasl_continuation_passes_through(tmp_path):
    srv = ScriptedServer(script({
        b"AUTH PLAIN": [b"+ \r\n"],
        b"AGRhbmEAc2VjcmV0": [b"+OK logged in\r\n"],
        b"STAT": [b"+OK 0 0\r\n"],
    }))
    status, out, err = run_pop3c(
        [srv.port], b"AUTH PLAIN\nAGRhbmEAc2VjcmV0\nSTAT\n",
        env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"AUTH PLAIN", b"AGRhbmEAc2VjcmV0", b"STAT",
                            b"QUIT"]
    assert out == b"+OK scripted\n+ \n+OK logged in\n+OK 0 0\n+OK bye\n"


def test_password_keeps_blanks_but_not_cr(tmp_path):
    srv = ScriptedServer(script({b"PASS  two words ": [b"+OK\r\n"],
                                 b"NOOP": [b"+OK\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"PASS  two words \r\nNOOP \r\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"PASS  two words ", b"NOOP", b"QUIT"]
