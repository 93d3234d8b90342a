"""pop3d under systemd socket activation and xinetd (SPEC 1).

The real activators: systemd-socket-activate for Accept=no (listening
sockets in LISTEN_FDS, readiness through a NOTIFY_SOCKET this test listens
on) and Accept=yes (--accept --inetd: the connection on stdin/stdout;
--accept alone: the connection in LISTEN_FDS), and a real xinetd in the
foreground with the shipped xinetd/pop3d.  The command lines are the ones
the shipped units and xinetd file give, with only paths and the port
substituted.  The shipped units must pass systemd-analyze verify and rate
at most 2.0 in systemd-analyze security --offline=true.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from activation_util import (SYSTEMD_DIR, XINETD_FILE, NotifySocket, Pop,
                             Proc, ServerClosed,
                             concurrent_clients, connect, exec_args,
                             grader_flow, make_arrival_differ, need_tool,
                             passenv_args, read_unit, start_xinetd,
                             units_for_verify)
from conftest import POP3D, ROOT, TIMEOUT, free_port

SECURITY_MAX = 2.0
LISTENER = os.path.join(SYSTEMD_DIR, "pop3d-listener.service")
PER_CONN = os.path.join(SYSTEMD_DIR, "pop3d@.service")


def stop_all(started):
    """Stop every started Proc; fail on any sanitizer report."""
    reports = []
    for p in started:
        p.stop()
        r = p.sanitizer_report()
        if r:
            reports.append(r)
        shutil.rmtree(p.dir, ignore_errors=True)
    assert not reports, reports[0]


@pytest.fixture
def activators():
    """Factory for started activators; all stopped (with their process
    groups) after the test, and none may leave a sanitizer report."""
    started = []

    def start(argv, **kw):
        p = Proc(argv, **kw)
        started.append(p)
        return p

    yield start
    stop_all(started)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def socket_activate(*opts):
    return [need_tool("systemd-socket-activate"), *opts, *passenv_args()]


def start_listener(activators, maildrop, notify, port, extra=(), listen=None):
    """pop3d-listener.service's command line under systemd-socket-activate
    without --accept (Accept=no)."""
    listen = listen or ["-l", "127.0.0.1:%d" % port]
    argv = socket_activate(*listen, "-E", "NOTIFY_SOCKET=" + notify.path)
    args = exec_args(LISTENER, maildrop)
    # Extra options after the shipped ones, so that they win.
    return activators(argv + [POP3D, *args[:-1], *extra, args[-1]])


def start_per_connection(activators, maildrop, port, inetd=True):
    """pop3d@.service's command line under systemd-socket-activate
    --accept (Accept=yes), with --inetd like StandardInput=socket."""
    argv = socket_activate("--accept", *(["--inetd"] if inetd else []),
                           "-l", "127.0.0.1:%d" % port)
    return activators(argv + [POP3D, *exec_args(PER_CONN, maildrop)])


# --- Accept=no ---------------------------------------------------------------

def test_accept_no_grader_flow_and_readiness(activators, maildrop, notify):
    port = free_port()
    proc = start_listener(activators, maildrop, notify, port)
    first = make_arrival_differ(maildrop)[0]
    # systemd-socket-activate starts pop3d at the first connection.
    c = connect(port, proc=proc)
    notify.wait_for(lambda m: m == "READY=1")
    notify.wait_for(lambda m: m.startswith("STATUS="))
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
    grader_flow(port, maildrop, first=first)
    assert proc.poll() is None
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    notify.wait_for(lambda m: m == "STOPPING=1")


def test_accept_no_status_counts_sessions(activators, maildrop, notify):
    port = free_port()
    proc = start_listener(activators, maildrop, notify, port)
    conns = [connect(port, proc=proc) for _ in range(3)]
    notify.wait_for(lambda m: m == "READY=1")
    notify.wait_for(lambda m: re.fullmatch(r"STATUS=\D*3\b.*", m))
    since = notify.mark()
    for c in conns:
        assert c.cmd("QUIT").startswith(b"+OK")
        c.close()
    notify.wait_for(lambda m: re.fullmatch(r"STATUS=\D*0\b.*", m),
                    since=since)


def test_accept_no_concurrent_clients(activators, maildrop, notify):
    port = free_port()
    proc = start_listener(activators, maildrop, notify, port)
    connect(port, proc=proc).close()
    notify.wait_for(lambda m: m == "READY=1")
    concurrent_clients(port, maildrop, 20)
    assert proc.poll() is None


def test_accept_no_session_limit(activators, maildrop, notify):
    """--max-sessions applies to passed sockets as to its own: one more
    connection gets -ERR [SYS/TEMP], and the pool recovers after."""
    port = free_port()
    proc = start_listener(activators, maildrop, notify, port,
                          extra=["--max-sessions", "2"])
    a = connect(port, proc=proc)
    notify.wait_for(lambda m: m == "READY=1")
    b = connect(port)
    extra = Pop(port, greet=False)
    line = extra.line()
    assert line.startswith(b"-ERR [SYS/TEMP]"), line
    assert extra.closed()
    extra.close()
    for c in (a, b):
        assert c.cmd("STAT").startswith(b"+OK")
        assert c.cmd("QUIT").startswith(b"+OK")
        c.close()
    c = connect(port)
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_accept_no_two_sockets_ipv4_and_ipv6(activators, maildrop, notify):
    try:
        port6 = free_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = free_port()
    proc = start_listener(activators, maildrop, notify, port, listen=[
        "-l", "127.0.0.1:%d" % port, "-l", "[::1]:%d" % port6])
    c4 = connect(port, proc=proc)
    notify.wait_for(lambda m: m == "READY=1")
    c6 = connect(port6, host="::1")
    for c in (c4, c6):
        assert c.cmd("STAT").startswith(b"+OK")
        assert c.cmd("QUIT").startswith(b"+OK")
        c.close()


def test_datagram_socket_refused(activators, maildrop):
    """A passed socket that is not a stream socket: a clear message and
    exit 64, no service on it."""
    port = free_port()
    argv = socket_activate("--datagram", "-l", "127.0.0.1:%d" % port)
    proc = activators(argv + [POP3D, *exec_args(LISTENER, maildrop)])
    deadline = time.monotonic() + TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # systemd-socket-activate starts pop3d at the first datagram.
        while proc.poll() is None and time.monotonic() < deadline:
            s.sendto(b"STAT\r\n", ("127.0.0.1", port))
            time.sleep(0.1)
    assert proc.wait() == 64
    out = proc.output().decode(errors="replace")
    msg = [l for l in out.splitlines() if l.startswith("pop3d:")]
    assert msg and "socket" in msg[-1], out


# --- Accept=yes ----------------------------------------------------------------

def test_accept_yes_inetd_grader_flow(activators, maildrop):
    port = free_port()
    proc = start_per_connection(activators, maildrop, port)
    first = make_arrival_differ(maildrop)[0]
    connect(port, proc=proc).close()
    grader_flow(port, maildrop, first=first)


def test_accept_yes_inetd_concurrent_clients(activators, maildrop):
    port = free_port()
    proc = start_per_connection(activators, maildrop, port)
    connect(port, proc=proc).close()
    concurrent_clients(port, maildrop, 20)


def test_accept_yes_connection_in_listen_fds(activators, maildrop):
    """--accept without --inetd: the connection comes as LISTEN_FDS fd 3,
    as systemd passes it to an Accept=yes service."""
    port = free_port()
    proc = start_per_connection(activators, maildrop, port, inetd=False)
    connect(port, proc=proc).close()
    grader_flow(port, maildrop)


def test_accept_yes_nothing_on_the_socket_but_protocol(activators, maildrop):
    """A bad command line ends as protocol only; logs never reach the
    client even though stdout is the socket."""
    port = free_port()
    proc = start_per_connection(activators, maildrop, port)
    c = connect(port, proc=proc)
    assert c.cmd("RETR 999").startswith(b"-ERR")
    assert c.cmd("BOGUS").startswith(b"-ERR")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.closed()
    c.close()


def maps_of(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def session_pids(activator_pid):
    """The pop3d processes the activator forked, one per connection."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        if ppid == activator_pid and os.path.basename(exe) == "pop3d":
            pids.append(int(d))
    return pids


def test_stdio_session_does_not_load_libsystemd(activators, maildrop):
    """A per-connection session (Accept=yes with StandardInput=socket,
    xinetd) is passed no socket, sends no notification and has no TLS:
    libsystemd (and the libraries it brings) and OpenSSL are never mapped
    into it (each such session is an exec, and the loader's time is part
    of its login)."""
    port = free_port()
    proc = start_per_connection(activators, maildrop, port)
    c = connect(port, proc=proc)
    assert c.cmd("STAT").startswith(b"+OK")
    end = time.time() + TIMEOUT
    while not session_pids(proc.pid) and time.time() < end:
        time.sleep(0.05)
    pids = session_pids(proc.pid)
    assert len(pids) == 1, pids
    maps = maps_of(pids[0])
    assert "libc.so" in maps or "libc-" in maps, maps
    assert "libsystemd" not in maps, maps
    assert "libssl" not in maps and "libcrypto" not in maps, maps
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()


def test_listener_loads_libsystemd_when_passed_sockets(activators, maildrop,
                                                        notify):
    """Accept=no: systemd's sockets and notifications need libsystemd,
    loaded at the start (before any session or confinement)."""
    port = free_port()
    proc = start_listener(activators, maildrop, notify, port)
    c = connect(port, proc=proc)
    notify.wait_for(lambda m: m == "READY=1")
    assert "libsystemd.so" in maps_of(proc.pid)
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()


# --- xinetd ------------------------------------------------------------------

@pytest.fixture
def xinetd(tmp_path):
    started = []

    def start(maildrop):
        port = free_port()
        workdir = tempfile.mkdtemp(prefix="pop3x")
        p = start_xinetd(workdir, port, maildrop)
        started.append(p)
        p.port = port
        return p

    yield start
    stop_all(started)


def test_xinetd_grader_flow(xinetd, maildrop):
    first = make_arrival_differ(maildrop)[0]
    x = xinetd(maildrop)
    connect(x.port, proc=x).close()
    grader_flow(x.port, maildrop, first=first)


def test_xinetd_concurrent_clients(xinetd, maildrop):
    x = xinetd(maildrop)
    connect(x.port, proc=x).close()
    concurrent_clients(x.port, maildrop, 20)


def test_xinetd_per_source_limit(xinetd, maildrop):
    """The shipped per_source limit holds: one connection more from the
    same address is closed without a greeting."""
    text = open(XINETD_FILE).read()
    limit = int(re.search(r"(?m)^\s*per_source\s*=\s*(\d+)", text).group(1))
    assert limit >= 20, "per_source below the concurrency the tests use"
    x = xinetd(maildrop)
    conns = [connect(x.port, proc=x) for _ in range(limit)]
    extra = Pop(x.port, greet=False)
    with pytest.raises(ServerClosed):
        extra.line()
    extra.close()
    for c in conns:
        assert c.cmd("QUIT").startswith(b"+OK")
        c.close()


# --- the shipped files ---------------------------------------------------------

def test_units_shape():
    sock = read_unit(os.path.join(SYSTEMD_DIR, "pop3d.socket"))["Socket"]
    assert sock["Accept"] == ["yes"]
    assert sock["ListenStream"] == ["110"]
    assert "MaxConnections" in sock and "MaxConnectionsPerSource" in sock
    svc = read_unit(PER_CONN)["Service"]
    assert svc["StandardInput"] == ["socket"]
    assert svc["StandardError"] == ["journal"]
    lsock = read_unit(os.path.join(SYSTEMD_DIR,
                                   "pop3d-listener.socket"))["Socket"]
    assert lsock["Accept"] == ["no"]
    assert lsock["ListenStream"] == ["110"]
    lsvc = read_unit(LISTENER)["Service"]
    assert lsvc["Type"] == ["notify"]
    for s in (svc, lsvc):
        argv = s["ExecStart"][-1].split()
        assert argv[0] == "/usr/local/sbin/pop3d"
        assert argv[-1] == "/var/mail/pop3d"
        assert "--order" in argv and argv[argv.index("--order") + 1] == \
            "arrival"
        assert "--layout" in argv and argv[argv.index("--layout") + 1] == \
            "flat"
        assert s["ReadWritePaths"] == ["/var/mail/pop3d"]
        assert s["ProtectSystem"] == ["strict"]
    x = open(XINETD_FILE).read()
    assert re.search(r"(?m)^\s*server_args\s*=\s*--layout flat "
                     r"--order arrival /var/mail/pop3d\s*$", x)
    assert re.search(r"(?m)^\s*wait\s*=\s*no\s*$", x)
    assert re.search(r"(?m)^\s*socket_type\s*=\s*stream\s*$", x)
    assert not re.search(r"(?m)^\s*user\s*=\s*root\s*$", x)


def test_units_verify(tmp_path):
    analyze = need_tool("systemd-analyze")
    names = units_for_verify(str(tmp_path))
    env = dict(os.environ)
    man = os.path.join(ROOT, "pop3d.8")
    if os.path.exists(man) and shutil.which("man"):
        # Documentation=man:pop3d(8) is checked against the repo's page.
        os.makedirs(tmp_path / "man" / "man8")
        shutil.copy(man, tmp_path / "man" / "man8" / "pop3d.8")
        env["MANPATH"] = str(tmp_path / "man")
        manopt = "--man=yes"
    else:
        manopt = "--man=no"
    r = subprocess.run([analyze, "verify", manopt, *names], cwd=tmp_path,
                       env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
        r.stdout + r.stderr


@pytest.mark.parametrize("unit", ["pop3d@.service", "pop3d-listener.service",
                                  "pop3s@.service"])
def test_units_security(unit):
    analyze = need_tool("systemd-analyze")
    r = subprocess.run([analyze, "security", "--offline=true", "--no-pager",
                        os.path.join(SYSTEMD_DIR, unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= SECURITY_MAX, r.stdout


def test_pop3s_unit_serves_tls_with_users(tmp_path):
    """The shipped pop3s@.service command line, credentials substituted,
    run per connection under systemd-socket-activate as an unprivileged
    user (as DynamicUser= would): a TLS login sees the user's maildrop."""
    import ssl
    import poplib
    import pwd
    activate = need_tool("systemd-socket-activate")
    openssl = need_tool("openssl")
    setpriv = need_tool("setpriv")
    top = tempfile.mkdtemp(prefix="pop3s", dir="/var/tmp")
    try:
        os.chmod(top, 0o755)
        creds = os.path.join(top, "creds")
        base = os.path.join(top, "mail")
        os.makedirs(os.path.join(base, "alice"))
        with open(os.path.join(base, "alice", "m1"), "w") as f:
            f.write("Subject: hi\n\nfor alice\n")
        os.makedirs(creds)
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", os.path.join(creds, "key.pem"),
                        "-out", os.path.join(creds, "cert.pem")],
                       check=True, capture_output=True, timeout=60)
        hashed = subprocess.run([openssl, "passwd", "-6", "s3cret"],
                                check=True, capture_output=True,
                                text=True).stdout.strip()
        with open(os.path.join(creds, "users"), "w") as f:
            f.write("alice:%s\n" % hashed)
        nobody = pwd.getpwnam("nobody")
        for d, _, files in os.walk(top):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
            for n in files:
                os.chown(os.path.join(d, n), nobody.pw_uid, nobody.pw_gid)
        unit = os.path.join(SYSTEMD_DIR, "pop3s@.service")
        args = [a.replace("${CREDENTIALS_DIRECTORY}", creds)
                for a in exec_args(unit, base)]
        assert "--tls" in args and "--users" in args
        port = free_port()
        proc = Proc([setpriv, "--reuid", str(nobody.pw_uid), "--regid",
                     str(nobody.pw_gid), "--clear-groups", activate,
                     "--accept", "--inetd", "-l", "127.0.0.1:%d" % port,
                     *passenv_args(), POP3D, *args],
                    tmpdir=str(tmp_path))
        try:
            ctx = ssl.create_default_context(
                cafile=os.path.join(creds, "cert.pem"))
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx,
                                        timeout=TIMEOUT)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.05)
            assert p.getwelcome().startswith(b"+OK")
            p.user("alice")
            p.pass_("s3cret")
            assert p.stat() == (1, len(b"Subject: hi\r\n\r\nfor alice\r\n"))
            assert p.retr(1)[1] == [b"Subject: hi", b"", b"for alice"]
            p.quit()
        finally:
            proc.stop()
        assert proc.sanitizer_report() is None, proc.sanitizer_report()
    finally:
        shutil.rmtree(top, ignore_errors=True)
