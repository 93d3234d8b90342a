"""pop3d end to end against hostile clients: limits per source address,
timers a slow client cannot stretch, login guessing, files (SPEC 1-3)."""
import os
import signal
import socket

from server_util import (Pop, ServerClosed, messages, pop3d,  # noqa: F401
                         wait_for)


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
