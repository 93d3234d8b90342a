"""pop3d end to end: invocation (SPEC 1): sysexits codes and one-line
messages, --help, --version, SIGTERM."""
import os
import signal
import socket
import subprocess
import time

import pytest

from server_util import (POP3D, TIMEOUT, Pop, free_port, messages,  # noqa
                         pop3d)


def run(*args, timeout=TIMEOUT):
    return subprocess.run([POP3D, *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def one_line(err):
    text = err.decode(errors="replace").strip()
    # A sanitizer build may print nothing else; allow no other output.
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("port", ["99999", "65536", "abc", "12x", "-5",
                                  "1.5", ""])
def test_bad_port(maildrop, port):
    r = run("--", port, str(maildrop)) if port.startswith("-") else \
        run(port, str(maildrop))
    assert r.returncode == 64, (port, r.returncode, r.stderr)
    msg = one_line(r.stderr)
    if port:
        assert port in msg, msg
    assert r.stdout == b""


def test_missing_maildrop(tmp_path):
    missing = str(tmp_path / "no-such-dir")
    r = run(str(free_port()), missing)
    assert r.returncode == 66, (r.returncode, r.stderr)
    assert missing in one_line(r.stderr) or "no-such-dir" in \
        one_line(r.stderr)


def test_maildrop_not_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"Subject: x\n\ny\n")
    r = run(str(free_port()), str(f))
    assert r.returncode == 66, (r.returncode, r.stderr)
    assert "file" in one_line(r.stderr)


def test_usage_errors(maildrop):
    for args in ([], ["--no-such-option", "1110", str(maildrop)],
                 ["1110", str(maildrop), "extra"],
                 ["-t", "abc", "1110", str(maildrop)],
                 ["--order", "random", "1110", str(maildrop)],
                 ["--max-sessions", "0x", "1110", str(maildrop)]):
        r = run(*args)
        assert r.returncode == 64, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args
        assert r.stdout == b""


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "PORT" in out and "MAILDROP" in out
    for opt in ("--timeout", "--exclusive", "--lock-wait", "--order", "--layout",
                "--delete-now", "--max-sessions", "--help", "--version"):
        assert opt in out, opt
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.decode().startswith("pop3d "), r.stdout
    assert any(ch.isdigit() for ch in r.stdout.decode())


def test_port_in_use(maildrop):
    """Every address taken: exit 71 (system error) with one line."""
    held = []
    s4 = socket.socket()
    s4.bind(("0.0.0.0", 0))
    s4.listen()
    held.append(s4)
    port = s4.getsockname()[1]
    try:
        s6 = socket.socket(socket.AF_INET6)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.bind(("::", port))
        s6.listen()
        held.append(s6)
    except OSError:
        pass
    try:
        r = run(str(port), str(maildrop))
    finally:
        for s in held:
            s.close()
    assert r.returncode == 71, (r.returncode, r.stderr)
    assert str(port) in one_line(r.stderr)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_port_in_use_on_one_family(maildrop, family):
    """The port taken for IPv4 only (or IPv6 only): exit 71 rather than
    serve half the addresses, where clients of the other family would be
    refused or reach another program."""
    s = socket.socket(family)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::", 0))
        else:
            s.bind(("0.0.0.0", 0))
    except OSError:
        s.close()
        pytest.skip("no such address family here")
    s.listen()
    port = s.getsockname()[1]
    try:
        r = run(str(port), str(maildrop))
    finally:
        s.close()
    assert r.returncode == 71, (r.returncode, r.stderr)
    assert str(port) in one_line(r.stderr)


@pytest.mark.parametrize("rnd", range(3))
def test_sigterm_stops_listener(pop3d, maildrop, rnd):
    """SIGTERM right after a reply (the worker may not be back in poll
    yet): the listener stops accepting and exits 0 within 10 s."""
    names = messages(maildrop)
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 1")
    os.kill(srv.proc.pid, signal.SIGTERM)
    try:
        rc = srv.proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("listener still running 10 s after SIGTERM")
    assert rc == 0, rc
    # it stopped accepting
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", srv.port), 1).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("port %d still accepting after SIGTERM" % srv.port)
    # the session in flight is not corrupted: either it could still QUIT
    # (and the file went), or it was closed (and nothing went).
    try:
        c.send("QUIT\r\n")
        st = c.line()
    except (OSError, AssertionError):
        st = None
    gone = not os.path.exists(os.path.join(maildrop, names[0]))
    if st is not None and st.startswith(b"+OK"):
        assert gone
    else:
        assert not gone
    assert sorted(os.listdir(maildrop)) == sorted(
        names[1:] if gone else names)


def test_sigterm_no_stray_workers(pop3d, maildrop):
    srv = pop3d(maildrop)
    pgid = os.getpgid(srv.proc.pid)
    for _ in range(3):
        Pop(srv.port).quit()
    os.kill(srv.proc.pid, signal.SIGTERM)
    srv.proc.wait(timeout=TIMEOUT)

    def members():
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(p)
        return out
    deadline = time.monotonic() + 5
    while members() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert members() == []
