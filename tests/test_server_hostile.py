"""pop3d end to end against hostile clients: limits per source address,
timers a slow client cannot stretch, login guessing, files (SPEC 1-3)."""
import base64
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from activation_util import Proc, need_tool, passenv_args
from auth_util import Area, NetNs, TlsServer, make_certs, mkpasswd
from conftest import POP3D, TIMEOUT, free_port, wire
from server_util import (Pop, ServerClosed, messages, pop3d,  # noqa: F401
                         wait_for)

PASSWORD = "Zq8 wipe-me Kx3 horse"


@pytest.fixture
def activators():
    """Factory for started activators, all stopped after the test."""
    started = []

    def start(argv):
        p = Proc(argv)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def area_users():
    """A users file with alice (yescrypt) and her maildrop; the options
    that serve it (pop3d refuses a users file as root: --user nobody)."""
    a = Area()
    a.maildrop("alice", [b"Subject: one\r\n\r\nbody\r\n"])
    a.write_users(["alice:" + mkpasswd("yescrypt", PASSWORD)])
    yield a, ["--users", a.users, "--user", "nobody"]
    a.cleanup()


def worker_of(srv, conn):
    """pid of the worker process holding conn's server-side socket."""
    port = conn.sock.getsockname()[1]
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[2].split(":")[1], 16) == port and \
                        int(fields[1].split(":")[1], 16) == srv.port and \
                        fields[9] != "0":
                    inode = fields[9]
    assert inode
    for child in os.listdir("/proc"):
        if not child.isdigit() or int(child) == srv.proc.pid:
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % child):
                if os.readlink("/proc/%s/fd/%s" % (child, fd)) == \
                        "socket:[%s]" % inode:
                    return int(child)
        except OSError:
            continue
    raise AssertionError("no worker holds the connection")


def settled(srv):
    """Wait until the readiness probe's session has ended."""
    assert wait_for(lambda: b"session end" in srv.output())


def admitted(port):
    """A new connection from loopback gets a greeting (polling while
    seats are given back): the connection, or None."""
    result = []

    def try_once():
        c = Pop(port, greet=False)
        line = c.line()
        if line.startswith(b"+OK"):
            result.append(c)
            return True
        c.close()
        return False
    wait_for(try_once, step=0.1)
    return result[0] if result else None


def test_max_per_source(pop3d, maildrop):
    """The 4th connection from one address with --max-per-source 3 is
    turned away with -ERR [SYS/TEMP] while the 3 are served; a seat given
    back is usable again."""
    srv = pop3d(maildrop, "--max-per-source", "3")
    settled(srv)
    held = [Pop(srv.port) for _ in range(3)]
    for c in held:
        c.ok("NOOP")
    extra = Pop(srv.port, greet=False)
    line = extra.line()
    assert line == b"-ERR [SYS/TEMP] too many connections from your address"
    assert extra.wait_closed()
    for c in held:
        c.ok("NOOP")
    assert b"too many connections from this address" in srv.output()
    held[0].quit()
    again = admitted(srv.port)
    assert again is not None
    again.ok("NOOP")
    again.quit()
    for c in held[1:]:
        c.quit()


def test_max_per_source_seat_of_dead_worker(pop3d, maildrop):
    """A worker killed in the middle of a session gives its seat back."""
    srv = pop3d(maildrop, "--max-per-source", "1")
    settled(srv)
    victim = Pop(srv.port)
    victim.ok("NOOP")
    extra = Pop(srv.port, greet=False)
    assert extra.line().startswith(b"-ERR [SYS/TEMP]")
    os.kill(worker_of(srv, victim), signal.SIGKILL)
    assert victim.wait_closed()
    c = admitted(srv.port)
    assert c is not None
    c.ok("NOOP")
    c.quit()


def test_max_per_source_zero_is_no_limit(pop3d, maildrop):
    srv = pop3d(maildrop, "--max-per-source", "0")
    held = [Pop(srv.port) for _ in range(5)]
    for c in held:
        c.ok("NOOP")
    for c in held:
        c.quit()


# --- timers a slow client cannot stretch -------------------------------------

def drip(port, data, every, result):
    """Send data one byte every `every` seconds; record when the server
    closed (seconds after connecting), or None if it never did."""
    t0 = time.monotonic()
    try:
        c = Pop(port, timeout=30)
        for b in data:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            time.sleep(every)
        result.append(time.monotonic() - t0 if c.wait_closed(30) else None)
        c.close()
    except Exception as e:  # reported by the test's assertion
        result.append(e)


def test_drip_feed_client_dropped(pop3d, maildrop):
    """The idle timeout counts to a complete line: a client dripping a
    byte every half second is dropped within twice the timeout, while a
    well-behaved client is served."""
    names = messages(maildrop)
    srv = pop3d(maildrop, "--timeout", "3")
    result = []
    t = threading.Thread(target=drip,
                         args=(srv.port, b"NOOP" * 20, 0.5, result))
    t.start()
    time.sleep(0.5)
    c = Pop(srv.port)
    assert c.stat()[0] == len(names)
    c.quit()
    t.join(60)
    assert len(result) == 1
    took = result[0]
    assert isinstance(took, float), took
    assert 2.9 <= took <= 6, took
    assert b"idle timeout" in srv.output()


def test_login_timeout(pop3d, area_users):
    """With --users, a client that keeps talking but never logs in is
    dropped at --login-timeout."""
    area, opts = area_users
    srv = pop3d(area.base, *opts, "--login-timeout", "2")
    c = Pop(srv.port)
    t0 = time.monotonic()
    closed = None
    while time.monotonic() - t0 < 20:
        try:
            c.multi("CAPA")
        except (ServerClosed, OSError):
            closed = time.monotonic() - t0
            break
        time.sleep(0.3)
    assert closed is not None and 1.9 <= closed <= 8, closed
    assert wait_for(lambda: b"login timeout" in srv.output())


def test_login_timeout_ends_with_login(pop3d, area_users):
    """After a successful login only the idle timeout applies."""
    area, opts = area_users
    srv = pop3d(area.base, *opts, "--login-timeout", "2")
    c = Pop(srv.port)
    c.ok("USER alice")
    c.ok("PASS " + PASSWORD)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        c.ok("NOOP")
        time.sleep(0.3)
    c.quit()


def server_memory(srv):
    """writable_memory() of every process of srv: the listener, its
    workers, their login processes."""
    todo, out = [srv.proc.pid], []
    while todo:
        pid = todo.pop()
        todo += children(pid)
        try:
            out.append(writable_memory(pid))
        except OSError:
            continue        # ended meanwhile
    return b"".join(out)


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(p))
    return out


def test_never_reading_client_stdio_mode(activators, maildrop):
    """Under systemd-socket-activate --accept --inetd (blocking fds 0/1 as
    systemd passes them), a client that asks for a 20 MB message and never
    reads is dropped within a few timeouts; nothing is deleted."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    with open(os.path.join(maildrop, "zz-large.eml"), "wb") as f:
        f.write(b"Subject: big\n\n" + line * (20 * (1 << 20) // len(line)))
    names = messages(maildrop)
    big = names.index("zz-large.eml") + 1
    port = free_port()
    proc = activators([
        need_tool("systemd-socket-activate"), "--accept", "--inetd",
        "-l", "127.0.0.1:%d" % port, *passenv_args(),
        POP3D, "--timeout", "2", str(maildrop)])
    s = None
    deadline = time.monotonic() + TIMEOUT
    while s is None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    greeting = b""
    while not greeting.endswith(b"\r\n"):
        chunk = s.recv(1)
        assert chunk
        greeting += chunk
    s.sendall(b"DELE 1\r\nRETR %d\r\n" % big)
    assert wait_for(lambda: children(proc.pid))
    pids = children(proc.pid)
    t0 = time.monotonic()
    assert wait_for(lambda: not any(p in children(proc.pid) for p in pids),
                    timeout=30)
    took = time.monotonic() - t0
    s.close()
    assert took < 15, took
    assert sorted(os.listdir(maildrop)) == sorted(names)


def writable_memory(pid, cap=64 << 20):
    """The bytes of pid's private writable mappings (heap, stack, data):
    where a password would be left.  Mappings larger than cap (the shadow
    memory of a sanitizer build) are skipped, so this stays small."""
    out = []
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw"):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if hi - lo > cap:
                continue
            try:
                mem.seek(lo)
                out.append(mem.read(hi - lo))
            except OSError:
                continue
    return b"".join(out)


# --- login guessing ----------------------------------------------------------

AUTH_FAIL = b"-ERR [AUTH] invalid user name or password"


def timed(conn, command):
    t = time.monotonic()
    r = conn.cmd(command)
    return r, time.monotonic() - t


def test_ten_failed_logins_all_after_half_a_second(pop3d, area_users):
    """Each failed login is answered 0.500 s or later after it was sent,
    never a hair early (an absolute deadline, nanosecond clock)."""
    area, opts = area_users
    srv = pop3d(area.base, *opts)
    took = []
    c = None
    for i in range(10):
        if i % 3 == 0:
            c = Pop(srv.port)
        c.ok("USER " + ("alice" if i % 2 else "mallory"))
        r, t = timed(c, "PASS wrong%d" % i)
        assert r == AUTH_FAIL, r
        took.append(t)
    assert min(took) >= 0.500, took


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def login_cpu(srv, name):
    """Server CPU time spent on one failed login as name (a long socket
    timeout: a heavy hash on a loaded machine takes a while)."""
    c = Pop(srv.port, timeout=300)
    c.ok("USER " + name)
    pid = worker_of(srv, c)
    # With a login process, its monitor (the worker) checks passwords.
    with open("/proc/%d/stat" % pid) as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    if ppid != srv.proc.pid:
        pid = ppid
    before = cpu_seconds(pid)
    r, took = timed(c, "PASS not-the-password")
    assert r == AUTH_FAIL, r
    assert took >= 0.5, took
    # Read before the close: with --users a worker exits after its session.
    spent = cpu_seconds(pid) - before
    c.close()
    return spent


@pytest.mark.parametrize("method,cost", [("bcrypt", "13"), ("yescrypt", "8")])
def test_unknown_name_costs_a_real_hash(pop3d, method, cost):
    """With an expensive hash (bcrypt cost 13, heavy yescrypt) an unknown
    name costs the server the same hash work as a wrong password: timing
    cannot tell names apart.  Measured as the worker's CPU time, which the
    machine's load does not distort."""
    area = Area()
    try:
        r = subprocess.run(["mkpasswd", "-m", method, "-R", cost, "--stdin"],
                           input=PASSWORD.encode(), capture_output=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        area.maildrop("alice", [b"Subject: one\r\n\r\nbody\r\n"])
        area.write_users(["alice:" + r.stdout.decode().strip()])
        srv = pop3d(area.base, "--users", area.users, "--user", "nobody")
        known = login_cpu(srv, "alice")
        unknown = login_cpu(srv, "mallory")
        assert known >= 0.05, known
        assert unknown >= 0.6 * known, (known, unknown)
        assert unknown <= known / 0.6 + 0.05, (known, unknown)
    finally:
        area.cleanup()


@pytest.fixture
def netns():
    name = "pop3h%d" % os.getpid()
    try:
        ns = NetNs(name, "10.232.%d.1" % (os.getpid() % 250))
    except OSError as e:
        pytest.skip("no network namespace: %s" % e)
    yield ns
    ns.delete()


def test_penalty_per_source_shared_by_workers(tserver, area_users, netns):
    """Repeated failures from one (non-loopback) address wait longer: the
    second 2 s, the third 4 s, also on another connection, which another
    worker serves; the answer never comes sooner."""
    area, opts = area_users
    srv = tserver(area.base, *opts, "--allow-plaintext", prefix=netns.prefix)
    a = Pop(sock=netns.socket_connect(srv.port, timeout=60))
    assert a.sock.getsockname()[0] == netns.addr
    a.ok("USER alice")
    r, first = timed(a, "PASS wrong1")
    assert r == AUTH_FAIL and first >= 0.5, (r, first)
    a.ok("USER mallory")
    r, second = timed(a, "PASS wrong2")
    assert r == AUTH_FAIL and second >= 2.0, (r, second)
    b = Pop(sock=netns.socket_connect(srv.port, timeout=60))
    b.ok("USER alice")
    r, third = timed(b, "PASS wrong3")
    assert r == AUTH_FAIL and third >= 4.0, (r, third)
    # the right password still gets in, and clears the record
    b.ok("USER alice")
    assert b.cmd("PASS " + PASSWORD).startswith(b"+OK")
    b.quit()
    a.ok("USER alice")
    r, after = timed(a, "PASS wrong4")
    assert r == AUTH_FAIL and 0.5 <= after < 2.0, (r, after)


@pytest.fixture
def tserver():
    started = []

    def start(*args, **kw):
        s = TlsServer(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_password_wiped_from_memory(pop3d, area_users):
    """After a login (PASS, then AUTH PLAIN) the password is in no buffer
    of any process of the server: their writable memory does not hold the
    bytes."""
    area, opts = area_users
    srv = pop3d(area.base, *opts)
    for how in ("PASS", "AUTH"):
        c = Pop(srv.port)
        if how == "PASS":
            c.ok("USER alice")
            c.ok("PASS " + PASSWORD)
        else:
            c.ok("AUTH PLAIN " + base64.b64encode(
                b"\0alice\0" + PASSWORD.encode()).decode())
        data = server_memory(srv)
        assert len(data) > 4096 and b"alice" in data   # the name stays
        # no 8-byte piece of the password or of its base64 form
        for secret in (PASSWORD.encode(), base64.b64encode(
                b"\0alice\0" + PASSWORD.encode())[8:]):
            for i in range(len(secret) - 7):
                assert secret[i:i + 8] not in data, (how, secret[i:i + 8])
        c.ok("NOOP")
        c.quit()


# --- files -------------------------------------------------------------------

def test_symlinked_user_maildrop_not_served(pop3d, area_users):
    """Anyone who may write to MAILDROP could point a user's default
    maildrop (MAILDROP/NAME) at another folder with a symbolic link: it is
    refused, not followed; nothing of the other folder is served."""
    area, opts = area_users
    other = area.maildrop("victim", [b"Subject: secret\r\n\r\nsecret\r\n"] * 2)
    alice = os.path.join(area.base, "alice")
    os.rename(alice, alice + ".orig")
    os.symlink(other, alice)
    srv = pop3d(area.base, *opts)
    c = Pop(srv.port)
    c.ok("USER alice")
    r = c.cmd("PASS " + PASSWORD)
    assert r.startswith(b"-ERR"), r
    assert c.cmd("STAT").startswith(b"-ERR")
    assert wait_for(lambda: b"symbolic link" in srv.output())
    # the real folder back in its place: served
    os.unlink(alice)
    os.rename(alice + ".orig", alice)
    c = Pop(srv.port)
    c.ok("USER alice")
    c.ok("PASS " + PASSWORD)
    assert c.stat()[0] == 1
    c.quit()
    assert sorted(os.listdir(other)) == ["01.eml", "02.eml"]


# --- sockets -----------------------------------------------------------------

def lowest_free_fd(pid):
    used = {int(fd) for fd in os.listdir("/proc/%d/fd" % pid)}
    n = 0
    while n in used:
        n += 1
    return n


def test_accept_backs_off_when_out_of_descriptors(pop3d, maildrop):
    """Workers whose accept() fails with EMFILE neither spin nor flood the
    log; once descriptors are free again the waiting client is served."""
    srv = pop3d(maildrop)
    settled(srv)
    workers = children(srv.proc.pid)
    assert workers
    limits = {}
    for pid in workers:
        r = subprocess.run(["prlimit", "--pid", str(pid), "--nofile",
                            "--raw", "--noheadings", "--output", "SOFT,HARD"],
                           capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
        limits[pid] = r.stdout.decode().split()
        n = lowest_free_fd(pid)
        r = subprocess.run(["prlimit", "--pid", str(pid),
                            "--nofile=%d:%s" % (n, limits[pid][1])],
                           capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
    before = {pid: cpu_seconds(pid) for pid in workers}
    log_before = srv.output().count(b"accept")
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    time.sleep(3)
    used = sum(cpu_seconds(pid) - before[pid] for pid in workers)
    lines = srv.output().count(b"accept") - log_before
    assert lines <= len(workers), srv.output()[-2000:]
    assert used < 1.0, used
    for pid in workers:
        subprocess.run(["prlimit", "--pid", str(pid),
                        "--nofile=%s:%s" % tuple(limits[pid])],
                       capture_output=True, timeout=TIMEOUT)
    greeting = c.recv(512)
    assert greeting.startswith(b"+OK"), greeting
    c.close()


# --- one status line per command ---------------------------------------------

def test_fiftieth_bad_command_gets_one_line(pop3d, maildrop):
    """The 50th bad command in a row gets one status line, its own -ERR
    saying the server closes, and nothing follows it."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.send("BOGUS\r\n" * 50)
    lines = [c.line() for _ in range(50)]
    assert all(l.startswith(b"-ERR") for l in lines), lines
    assert b"closing" not in lines[48], lines[48]
    assert b"closing" in lines[49], lines[49]
    assert c.wait_closed()


def test_list_and_uidl_agree(pop3d, maildrop):
    """LIST and UIDL come from one listing: the same numbers, deleted
    messages left out of both, the same one-message forms."""
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    c.ok("DELE 2")
    sizes, uids = c.scan_list(), c.uidl_list()
    assert sorted(sizes) == sorted(uids) and 2 not in sizes
    for n in sizes:
        assert c.ok("LIST %d" % n) == b"+OK %d %d" % (n, sizes[n])
        assert c.ok("UIDL %d" % n) == b"+OK %d %s" % (n, uids[n])
    for verb in ("LIST", "UIDL"):
        assert c.err(verb + " 2").startswith(b"-ERR")
        assert c.err(verb + " 0").startswith(b"-ERR")
    c.quit()


# --- the wire form of a message ----------------------------------------------

def test_file_ending_in_bare_cr(pop3d, empty_maildrop):
    """A file whose last line ends in a bare CR: the CR is content (the
    file's end of line is LF, RFC 1939 section 11), so the last line gets
    its CRLF after it; LIST counts exactly the octets RETR sends."""
    files = {
        "bare-cr": b"Subject: cr\n\nabc\r",
        "cr-cr-lf": b"Subject: crcrlf\r\n\r\nabc\r\r\n",
        "cr-inside": b"Subject: in\n\na\rb\n.\r",
    }
    for name, data in files.items():
        with open(os.path.join(empty_maildrop, name), "wb") as f:
            f.write(data)
    assert wire(files["bare-cr"]) == b"Subject: cr\r\n\r\nabc\r\r\n"
    assert wire(files["cr-inside"]) == b"Subject: in\r\n\r\na\rb\r\n.\r\r\n"
    srv = pop3d(empty_maildrop)
    c = Pop(srv.port)
    names = messages(empty_maildrop)
    sizes = c.scan_list()
    for n, name in enumerate(names, 1):
        expect = wire(files[name])
        assert sizes[n] == len(expect), name
        status, text = c.multi_raw("RETR %d" % n)
        assert status == b"+OK %d octets" % len(expect), status
        assert text == expect, name
    assert c.stat() == (len(names), sum(len(wire(d)) for d in files.values()))
    c.quit()


def test_password_wiped_after_stls(pop3d, area_users):
    """Over TLS too: neither our buffers nor the TLS layer's keep the
    decrypted PASS line."""
    area, opts = area_users
    certs = make_certs(area.root)
    srv = pop3d(area.base, *opts, "--tls-cert", certs["cert"],
                "--tls-key", certs["key"])
    c = Pop(srv.port)
    c.starttls(certs["ca"])
    c.ok("USER alice")
    c.ok("PASS " + PASSWORD)
    # The monitor serving the session and the login process relaying it.
    assert len(children(srv.proc.pid)) >= 1
    data = server_memory(srv)
    secret = PASSWORD.encode()
    for i in range(len(secret) - 7):
        assert secret[i:i + 8] not in data, secret[i:i + 8]
    c.quit()


def test_default_per_source_limit_off_loopback(tserver, maildrop, netns):
    """Without --max-per-source a non-loopback address may hold 32
    sessions; the 33rd connection is turned away."""
    srv = tserver(str(maildrop), prefix=netns.prefix)
    held = []
    try:
        for _ in range(32):
            held.append(Pop(sock=netns.socket_connect(srv.port, timeout=60)))
        extra = Pop(sock=netns.socket_connect(srv.port, timeout=60),
                    greet=False)
        assert extra.line() == \
            b"-ERR [SYS/TEMP] too many connections from your address"
        assert extra.wait_closed()
        held[0].ok("NOOP")
    finally:
        for c in held:
            c.close()
