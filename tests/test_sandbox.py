"""End-to-end tests of session confinement (SPEC 1: Landlock and a seccomp
allow-list once a session knows its maildrop; --no-sandbox).

The confined process is found through its socket (/proc/net/tcp, then
/proc/PID/fd) and checked in /proc/PID/status.  gdb in batch mode attaches
to it and makes it run one system call: the call is set up in general
registers only and run with one stepi on the `syscall` instruction the
process is waiting in, so no inferior function call (and no extended
register state) is needed.
"""
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from auth_util import Area, message, mkpasswd
from conftest import (POP3D, TIMEOUT, Conn, Server, sanitizer_build,
                      stdio_pop3d)
from server_util import wait_for

pytestmark = [
    pytest.mark.skipif(platform.machine() != "x86_64",
                       reason="system call numbers of x86_64"),
    pytest.mark.skipif(shutil.which("gdb") is None, reason="needs gdb"),
]

NR_CLOSE, NR_SETUID, NR_OPENAT = 3, 105, 257
AT_FDCWD = -100
O_RDONLY, O_WRONLY = 0, 1
EACCES = 13


def status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def socket_inode(server_port, client_port):
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16) == server_port and
                    int(remote.split(":")[1], 16) == client_port):
                return fields[9]
    return None


def holders(inode):
    """PIDs of every process holding socket inode (not the test)."""
    target = "socket:[%s]" % inode
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % d):
                if os.readlink("/proc/%s/fd/%s" % (d, fd)) == target:
                    out.append(int(d))
                    break
        except OSError:
            continue
    return out


def holder(inode):
    """PID of a process holding socket inode (not the test itself)."""
    pids = holders(inode)
    return min(pids) if pids else None


def session_pid(server, conn):
    """PID of the worker serving conn (a Conn on server's port)."""
    found = {}

    def look():
        inode = socket_inode(server.port, conn.sock.getsockname()[1])
        found["pid"] = inode and holder(inode)
        return found["pid"]
    assert wait_for(look), "no process holds the session's socket"
    return found["pid"]


def inject(pid, nr, *args, fatal=False):
    """Make pid run system call nr; str arguments are written below its
    stack.  Returns the call's result (-errno on failure).  fatal: the
    process is let run on from the call (its SIGSYS handler then runs)
    and None is returned once it exited."""
    lines = ["set pagination off", "handle SIGSYS nostop noprint pass",
             "set $s_rip = $rip", "set $s_rax = $rax",
             "set $s_orig = $orig_rax"]
    regs = ["rdi", "rsi", "rdx", "r10", "r8", "r9"]
    for r in regs:
        lines.append("set $s_%s = $%s" % (r, r))
    offset = 4096
    for r, a in zip(regs, args):
        if isinstance(a, str):
            data = a.encode()
            lines.append('set {char[%d]} ($rsp - %d) = "%s"'
                         % (len(data) + 1, offset, a))
            lines.append("set $%s = $rsp - %d" % (r, offset))
            offset += 4096
        else:
            lines.append("set $%s = %d" % (r, a))
    lines += ["set $orig_rax = -1", "set $rax = %d" % nr,
              "set $rip = $s_rip - 2"]
    if fatal:
        lines.append("continue")
    lines += ["stepi",
              'printf "RESULT %d\\n", $rax',
              "set $rip = $s_rip", "set $rax = $s_rax"]
    lines += ["set $%s = $s_%s" % (r, r) for r in regs]
    lines += ["set $orig_rax = $s_orig", "detach"]
    with tempfile.NamedTemporaryFile("w", suffix=".gdb") as script:
        script.write("\n".join(lines) + "\n")
        script.flush()
        out = subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-nx",
             "-iex", "set debuginfod enabled off",
             "-iex", "set auto-solib-add off", "-x", script.name],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60, env=dict(os.environ, DEBUGINFOD_URLS=""))
    if fatal:
        assert re.search(r"exited with code 0*106\b", out.stdout), out
        return None
    m = re.search(r"^RESULT (-?\d+)$", out.stdout, re.M)
    assert m is not None, out
    return int(m.group(1))


def open_file(pid, path, flags=O_RDONLY):
    fd = inject(pid, NR_OPENAT, AT_FDCWD, path, flags)
    if fd is not None and fd >= 0:
        assert inject(pid, NR_CLOSE, fd) == 0
    return fd


def assert_confined(pid):
    st = status(pid)
    assert st["Seccomp"] == "2", st
    assert st["NoNewPrivs"] == "1", st


def outside_file():
    """A file every user may read, outside any maildrop."""
    return "/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd"


# ------------------------------------------------------------- open mode

def test_listener_session_confined(server, maildrop):
    s = server(maildrop)
    c = Conn(s.port)
    pid = session_pid(s, c)
    assert_confined(pid)
    # The injection works: a message file of the maildrop opens ...
    name = sorted(os.listdir(maildrop))[0]
    assert open_file(pid, os.path.join(str(maildrop), name)) >= 0
    # ... a file outside it does not, and nothing can be written there.
    assert open_file(pid, outside_file()) == -EACCES
    assert open_file(pid, os.path.join(str(maildrop), name),
                     O_WRONLY) == -EACCES
    # The session goes on untouched.
    assert c.cmd("STAT").startswith(b"+OK ")
    assert c.cmd("QUIT").startswith(b"+OK")


def test_forbidden_call_ends_only_that_session(server, maildrop):
    s = server(maildrop)
    a = Conn(s.port)
    other = Conn(s.port)            # a session in flight elsewhere
    pid = session_pid(s, a)
    inject(pid, NR_SETUID, 0, fatal=True)
    assert a.closed()
    assert wait_for(lambda: b"forbidden system call" in s.output())
    log = s.output().decode()
    hits = [x for x in log.splitlines() if "sandbox" in x]
    assert len(hits) == 1, log
    assert re.search(r"forbidden system call setuid \(number 105, "
                     r"audit arch 0xc000003e\)", hits[0]), hits
    assert not re.search(r"worker \d+ (exited|killed)", log), log
    # The listener, the other session and the next client are served.
    assert s.proc.poll() is None
    assert other.cmd("STAT").startswith(b"+OK ")
    b = Conn(s.port)
    assert b.cmd("STAT").startswith(b"+OK ")
    assert b.cmd("QUIT").startswith(b"+OK")


def test_stdio_session_confined(maildrop):
    with stdio_pop3d("--order", "arrival", "--delete-now",
                     str(maildrop)) as (p, a):
        c = Conn(sock=a)
        assert_confined(p.pid)
        assert open_file(p.pid, outside_file()) == -EACCES
        assert c.cmd("DELE 1").startswith(b"+OK")
        assert c.cmd("QUIT").startswith(b"+OK")
        assert p.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("order", ["arrival", "directory"])
def test_confined_session_sorts_a_large_maildrop(tmp_path, order):
    """Numbering 300 messages sorts an array large enough that the C
    library asks the kernel for the machine's memory (sysinfo): a
    confined session must still answer, in both orders."""
    md = tmp_path / "big"
    md.mkdir()
    for i in range(300):
        (md / ("m%03d" % i)).write_bytes(b"Subject: %d\n\nbody\n" % i)
    r = subprocess.run([POP3D, "--index-dir", "", "--order", order,
                        str(md)], input=b"STAT\r\nLIST 300\r\nQUIT\r\n",
                       capture_output=True, timeout=TIMEOUT * 3)
    lines = r.stdout.split(b"\r\n")
    assert lines[1].startswith(b"+OK 300 "), (r.stdout, r.stderr)
    assert lines[2].startswith(b"+OK 300 "), r.stdout
    assert r.returncode == 0, r.stderr


def test_no_sandbox(server, maildrop):
    s = server(maildrop, "--no-sandbox")
    c = Conn(s.port)
    pid = session_pid(s, c)
    st = status(pid)
    assert st["Seccomp"] == "0" and st["NoNewPrivs"] == "0", st
    assert open_file(pid, outside_file()) >= 0
    assert c.cmd("STAT").startswith(b"+OK ")


def test_without_landlock_logs_once(maildrop):
    """A kernel without Landlock (simulated: strace fails the call):
    sessions are served as before, one log line says so."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    # LeakSanitizer cannot stop a traced process: no leak check here.
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":detect_leaks=0"}
    s = Server(maildrop, env=env, prefix=("strace", "-f", "-qq", "-o", "/dev/null",
                                 "-e", "trace=landlock_create_ruleset",
                                 "-e", "inject=landlock_create_ruleset:"
                                 "error=ENOSYS"))
    try:
        for _ in range(2):
            c = Conn(s.port)
            assert c.cmd("STAT").startswith(b"+OK ")
            assert c.cmd("QUIT").startswith(b"+OK")
        assert wait_for(lambda: b"no Landlock" in s.output())
        assert wait_for(lambda: s.output().count(b"session end") >= 2)
        log = s.output().decode()
        hits = [x for x in log.splitlines() if "sandbox" in x]
        assert len(hits) == 1, log
        assert "no Landlock" in hits[0], hits
    finally:
        s.stop()


# ------------------------------------------------------ with --users

@pytest.fixture
def area():
    a = Area()
    a.maildrop("alice", [message("alice", n) for n in (1, 2)])
    a.maildrop("bob", [message("bob", 1)])
    a.write_users(["alice:" + mkpasswd("sha-512", "alice-pw"),
                   "bob:" + mkpasswd("sha-512", "bob-pw")])
    yield a
    a.cleanup()


def login_pair(server, conn):
    """(monitor, login process) of conn before its login: the login
    process alone holds the client's socket; the monitor is its parent."""
    found = {}

    def look():
        inode = socket_inode(server.port, conn.sock.getsockname()[1])
        pids = holders(inode) if inode else []
        if len(pids) == 1:
            found["pair"] = (int(status(pids[0])["PPid"]), pids[0])
        return "pair" in found
    assert wait_for(look), "no login process holds the socket alone"
    monitor, login = found["pair"]
    assert monitor != server.proc.pid, "the login process is a worker"
    return monitor, login


def gone(pid):
    return (not os.path.exists("/proc/%d" % pid) or
            status(pid).get("State", "").startswith("Z"))


NR_RENAMEAT, NR_UNLINKAT = 264, 263
NR_KILL, NR_GETPID, NR_FCNTL, NR_SENDTO = 62, 39, 72, 44
F_GETFL, F_SETFL, F_SETOWN = 3, 4, 8
O_NONBLOCK, O_ASYNC = 0o4000, 0o20000
O_CREAT = 0o100


def shared_maps(pid):
    """Writable shared mappings of pid (rw-s in /proc/PID/maps)."""
    with open("/proc/%d/maps" % pid) as f:
        return [line for line in f if line.split()[1] == "rw-s"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (--user nobody)")
def test_users_before_and_after_login(server, area):
    s = server(area.base, "--users", area.users, "--user", "nobody")
    c = Conn(s.port)
    monitor, login = login_pair(s, c)
    alice1 = os.path.join(area.base, "alice", "01.eml")
    bob1 = os.path.join(area.base, "bob", "01.eml")
    # Before the login, the process that parses the client (TLS, commands)
    # reaches no file at all, not even the users file, and cannot write.
    assert_confined(login)
    for path in (area.users, alice1, bob1, area.base, area.root,
                 outside_file()):
        assert open_file(login, path) == -EACCES, path
    assert open_file(login, os.path.join(area.root, "new"),
                     O_WRONLY | O_CREAT) == -EACCES
    # (The monitor may remove mail before a login; this process not.)
    assert inject(login, NR_UNLINKAT, AT_FDCWD, alice1, 0) == -EACCES
    assert inject(login, NR_RENAMEAT, AT_FDCWD, alice1, AT_FDCWD,
                  alice1 + ".x") == -EACCES
    assert sorted(os.listdir(area.root)) == ["drops", "users"]
    assert os.path.exists(alice1)
    # The file calls are refused by its system-call filter too, not by
    # Landlock alone: a path that does not exist gives EACCES, not ENOENT
    # (the sanitizer build lets them through for its reports).
    if not sanitizer_build():
        assert open_file(login, "/nonexistent/x") == -EACCES
    # No memory shared with the workers and the listener (the per-source
    # table, the size cache) is mapped in it.
    assert shared_maps(login) == [], shared_maps(login)
    assert shared_maps(monitor) != []
    # Its monitor checks passwords: the users file, and the maildrops a
    # login can lead to; nothing outside, no writes.
    assert_confined(monitor)
    assert open_file(monitor, area.users) >= 0
    assert open_file(monitor, outside_file()) == -EACCES
    assert open_file(monitor, alice1, O_WRONLY) == -EACCES
    assert c.cmd("USER alice").startswith(b"+OK")
    assert c.cmd("PASS alice-pw").startswith(b"+OK maildrop has 2 ")
    # After it, a plain session is the monitor's alone, confined to this
    # user's mail; the login process has ended.
    assert wait_for(lambda: gone(login))
    inode = socket_inode(s.port, c.sock.getsockname()[1])
    assert holders(inode) == [monitor]
    assert open_file(monitor, alice1) >= 0
    assert open_file(monitor, bob1) == -EACCES
    assert open_file(monitor, area.users) == -EACCES
    assert c.cmd("RETR 1").startswith(b"+OK")
    c.body()
    assert c.cmd("DELE 2").startswith(b"+OK")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert os.listdir(os.path.join(area.base, "alice")) == ["01.eml"]
    # That worker can reach alice's mail only: it is not reused.
    assert wait_for(lambda: gone(monitor))
    d = Conn(s.port)
    assert d.cmd("USER bob").startswith(b"+OK")
    assert d.cmd("PASS bob-pw").startswith(b"+OK maildrop has 1 ")
    assert session_pid(s, d) not in (monitor, login)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (--user nobody)")
def test_users_tls_session_relayed(server, area, certs):
    """With TLS the login process keeps the TLS state and relays: it
    still reaches no file after the login, the monitor serves alice's
    mail only, and a large message arrives byte for byte."""
    big = b"".join(b"%s line %d of a long message\r\n" %
                   (b"." if i % 7 == 0 else b"", i) for i in range(60000))
    big = b"Subject: big\r\n\r\n" + big
    path = os.path.join(area.base, "alice", "03.eml")
    with open(path, "wb") as f:
        f.write(big)
    area.own(path)
    s = server(area.base, "--users", area.users, "--user", "nobody",
               "--tls-cert", certs["cert"], "--tls-key", certs["key"])
    c = Conn(s.port)
    monitor, login = login_pair(s, c)
    c.starttls(certs["ca"])
    assert c.cmd("USER alice").startswith(b"+OK")
    assert c.cmd("PASS alice-pw").startswith(b"+OK maildrop has 3 ")
    assert not gone(login)
    assert_confined(login)
    assert open_file(login, path) == -EACCES
    assert open_file(login, area.users) == -EACCES
    assert open_file(monitor, path) >= 0
    assert open_file(monitor, os.path.join(area.base, "bob",
                                           "01.eml")) == -EACCES
    sizes = c.scan_list()
    n = max(sizes, key=sizes.get)
    st, body = c.multi_raw("RETR %d" % n)
    assert st.startswith(b"+OK"), st
    assert body == big
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.closed()
    assert wait_for(lambda: gone(login) and gone(monitor))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (--user nobody)")
@pytest.mark.skipif(sanitizer_build(),
                    reason="LeakSanitizer's calls include kill")
def test_monitor_after_login_cannot_signal(server, area):
    """Once logged in, the monitor serving the session may no longer
    signal or fork: a kill ends that session with one log line."""
    s = server(area.base, "--users", area.users, "--user", "nobody")
    c = Conn(s.port)
    monitor, login = login_pair(s, c)
    assert c.cmd("USER alice").startswith(b"+OK")
    assert c.cmd("PASS alice-pw").startswith(b"+OK maildrop has 2 ")
    assert wait_for(lambda: gone(login))
    # Before the login it may (it stops its login process at shutdown).
    other = Conn(s.port)
    m2, l2 = login_pair(s, other)
    assert inject(m2, NR_KILL, l2, 0) == 0
    inject(monitor, NR_KILL, s.proc.pid, 0, fatal=True)
    assert c.closed()
    assert wait_for(lambda: b"forbidden system call kill" in s.output())
    assert s.proc.poll() is None
    d = Conn(s.port)
    assert d.cmd("USER bob").startswith(b"+OK")
    assert d.cmd("PASS bob-pw").startswith(b"+OK maildrop has 1 ")


def link_fd(pid):
    """The login process's socket to its monitor: its highest-numbered
    socket (made after the connection was accepted)."""
    fds = [int(fd) for fd in os.listdir("/proc/%d/fd" % pid)
           if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")]
    return max(fds)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (--user nobody)")
def test_monitor_limits_a_login_process_taken_over(server, area):
    """A login process running foreign code (here: gdb) that asks its
    monitor to check passwords again and again gets no more than a
    client would: each wrong one answered no sooner than the failure
    delay, and after the third it is ended."""
    s = server(area.base, "--users", area.users, "--user", "nobody")
    c = Conn(s.port)
    monitor, login = login_pair(s, c)
    fd = link_fd(login)
    # The ask message: type "ASK1", name[65], password[2049], padded;
    # written below the stack pointer, then sendto and read run as in
    # inject(): one stepi on the syscall instruction each.
    lines = ["set pagination off", "set $s_rip = $rip",
             "set $buf = $rsp - 16384", "set $j = 0",
             "while $j < 1024", "  set {int}($buf + 4 * $j) = 0",
             "  set $j = $j + 1", "end",
             "set {unsigned int}$buf = 0x41534b31",
             'set {char[6]}($buf + 4) = "alice"',
             'set {char[6]}($buf + 69) = "wrong"']

    def call(nr, *args):
        out = ["set $orig_rax = -1", "set $rax = %d" % nr,
               "set $rip = $s_rip - 2"]
        for reg, a in zip(["rdi", "rsi", "rdx", "r10", "r8", "r9"], args):
            out.append("set $%s = %s" % (reg, a))
        return out + ["stepi"]
    for _ in range(5):
        lines += call(44, fd, "$buf", 2120, 0x4000, 0, 0)   # sendto
        lines += call(0, fd, "$buf + 2400", 132)             # read
        lines.append('printf "ANSWER %d\\n", $rax')
    lines.append("detach")
    with tempfile.NamedTemporaryFile("w", suffix=".gdb") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        t = time.monotonic()
        out = subprocess.run(
            ["gdb", "-p", str(login), "-batch", "-nx",
             "-iex", "set debuginfod enabled off",
             "-iex", "set auto-solib-add off", "-x", f.name],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=120, env=dict(os.environ, DEBUGINFOD_URLS=""))
        took = time.monotonic() - t
    answers = re.findall(r"^ANSWER (-?\d+)$", out.stdout, re.M)
    assert answers[:3] == ["132"] * 3, out
    assert "132" not in answers[3:], out
    assert took >= 3 * 0.5, took
    assert wait_for(lambda: gone(login))
    assert wait_for(lambda: b"asked after too many failed logins" in
                    s.output())
    assert s.output().count(b"login failed for alice") == 3, s.output()
    assert c.closed()
    assert s.proc.poll() is None


def conn_fd(pid, server, conn):
    """The fd number of conn's server-side socket in pid."""
    inode = socket_inode(server.port, conn.sock.getsockname()[1])
    for fd in os.listdir("/proc/%d/fd" % pid):
        if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == \
                "socket:[%s]" % inode:
            return int(fd)
    raise AssertionError("pid %d holds no such socket" % pid)


def fd_flags(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError("no flags")


@pytest.mark.skipif(sanitizer_build(),
                    reason="the sanitizers' own calls include any fcntl")
def test_no_signal_driven_io(server, maildrop):
    """fcntl may set O_NONBLOCK but not O_ASYNC, nor aim SIGIO at a
    process (F_SETOWN): a session could otherwise have the kernel signal
    other processes of pop3d's user on its behalf."""
    s = server(maildrop)
    c = Conn(s.port)
    pid = session_pid(s, c)
    fd = conn_fd(pid, s, c)
    assert inject(pid, NR_FCNTL, fd, F_SETFL, O_NONBLOCK | 2) == 0
    inject(pid, NR_FCNTL, fd, F_SETFL, O_NONBLOCK | O_ASYNC | 2, fatal=True)
    assert c.closed()
    assert wait_for(lambda: b"forbidden system call fcntl" in s.output())
    d = Conn(s.port)
    pid = session_pid(s, d)
    inject(pid, NR_FCNTL, conn_fd(pid, s, d), F_SETOWN, s.proc.pid,
           fatal=True)
    assert d.closed()
    assert s.proc.poll() is None
    assert Conn(s.port).cmd("STAT").startswith(b"+OK ")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (--user nobody)")
def test_login_process_sends_to_no_address(server, area):
    """A login process may send on its sockets, never to an address: an
    inherited datagram socket could otherwise reach any named socket."""
    s = server(area.base, "--users", area.users, "--user", "nobody")
    c = Conn(s.port)
    monitor, login = login_pair(s, c)
    fd = conn_fd(login, s, c)
    # struct sockaddr_un for "/run/x": family 1, then the path.
    inject(login, NR_SENDTO, fd, "x", 1, 0, "\\001\\000/run/x", 10,
           fatal=True)
    assert c.closed()
    assert wait_for(lambda: b"forbidden system call sendto" in s.output())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (--user nobody)")
def test_handed_back_connection_is_non_blocking(server, area):
    """A login process that cleared O_NONBLOCK on the connection before
    handing it back cannot take the monitor's write deadline away."""
    s = server(area.base, "--users", area.users, "--user", "nobody")
    c = Conn(s.port)
    monitor, login = login_pair(s, c)
    fd = conn_fd(login, s, c)
    assert fd_flags(login, fd) & O_NONBLOCK
    assert inject(login, NR_FCNTL, fd, F_SETFL, 2) == 0
    assert not fd_flags(login, fd) & O_NONBLOCK
    assert c.cmd("USER alice").startswith(b"+OK")
    assert c.cmd("PASS alice-pw").startswith(b"+OK maildrop has 2 ")
    assert wait_for(lambda: gone(login))
    assert fd_flags(monitor, conn_fd(monitor, s, c)) & O_NONBLOCK
    assert c.cmd("STAT").startswith(b"+OK 2 ")
