"""pop3d behind the real proxies, with the configurations shipped in proxy/
(only ports substituted, and the back ends' host names by loopback).

- nginx's mail proxy: an auth_http service in the test routes alice to
  one pop3d and bob to another, each with its own maildrop root and users
  file; poplib and curl through nginx.
- HAProxy, mode tcp, send-proxy-v2, round robin over two pop3d listeners
  sharing one maildrop; 20 clients at once.

Clients connect from 127.0.0.7 and 127.0.0.8; the proxies reach pop3d
from 127.0.0.1, the only address in --proxy-from, so the logs tell the
two apart.
"""
import http.server
import os
import poplib
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from activation_util import wire
from auth_util import Area, message, mkpasswd
from conftest import ROOT, TIMEOUT, Conn, free_port
from proxy_util import start, wait_log

SHIPPED = os.path.join(ROOT, "proxy")
NGINX_MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
# Where the test's probes for a listening proxy come from.
PROBE = ("127.0.0.9", 0)


def need(path):
    if not os.path.exists(path):
        pytest.skip("%s is not installed (tests/install-deps.sh)" % path)


class Proc:
    """A proxy in the foreground in its own process group, its output in a
    file; killed with its group at the end."""

    def __init__(self, argv, log):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self):
        with open(self.log, "rb") as f:
            return f.read()

    def wait_port(self, port):
        deadline = time.monotonic() + TIMEOUT * 3
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("exited with %d: %r" % (
                    self.proc.returncode, self.output()[-2000:]))
            try:
                socket.create_connection(("127.0.0.1", port), 1,
                                         source_address=PROBE).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.output()[-2000:]
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass


def shipped(name, substitutions):
    """A shipped configuration with exact, counted substitutions."""
    with open(os.path.join(SHIPPED, name)) as f:
        text = f.read()
    for old, new in substitutions:
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    return text


class FromSource(poplib.POP3):
    """poplib connecting from a chosen loopback address."""

    source = "127.0.0.7"

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


# ---- nginx mail proxy, users sharded over two back ends ----

class AuthHandler(http.server.BaseHTTPRequestHandler):
    """nginx's auth_http protocol: a GET whose headers carry the login."""

    routes = {}     # user -> (password, backend port)
    seen = []

    def do_GET(self):
        user = self.headers.get("Auth-User", "")
        password = self.headers.get("Auth-Pass", "")
        self.seen.append((self.path, user, self.headers.get("Client-IP"),
                          self.headers.get("Auth-Protocol")))
        self.send_response(200)
        route = self.routes.get(user)
        if route is not None and route[0] == password:
            self.send_header("Auth-Status", "OK")
            self.send_header("Auth-Server", "127.0.0.1")
            self.send_header("Auth-Port", str(route[1]))
        else:
            self.send_header("Auth-Status", "Invalid login or password")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def areas():
    made = []

    def make(user, password, n):
        a = Area()
        made.append(a)
        a.maildrop(user, [message(user, i) for i in range(1, n + 1)])
        a.write_users(["%s:%s" % (user, mkpasswd("sha-512", password))])
        return a

    yield make
    for a in made:
        a.cleanup()


@pytest.fixture
def nginx_front(tmp_path):
    need(NGINX_MAIL_MODULE)
    need("/usr/sbin/nginx")
    started = []

    def run(auth_port):
        port = free_port()
        with open(tmp_path / "pop3-proxy.conf", "w") as f:
            f.write(shipped("nginx-pop3.conf", [
                ("127.0.0.1:9000", "127.0.0.1:%d" % auth_port),
                ("listen 110;", "listen %d;" % port)]))
        with open(tmp_path / "nginx.conf", "w") as f:
            f.write("load_module %s;\n"
                    "daemon off;\n"
                    "worker_processes 1;\n"
                    "pid %s/nginx.pid;\n"
                    "error_log %s/error.log info;\n"
                    "events { worker_connections 128; }\n"
                    "include %s/pop3-proxy.conf;\n"
                    % (NGINX_MAIL_MODULE, tmp_path, tmp_path, tmp_path))
        p = Proc(["/usr/sbin/nginx", "-p", str(tmp_path), "-e",
                  str(tmp_path / "error.log"), "-c",
                  str(tmp_path / "nginx.conf")], str(tmp_path / "out.log"))
        started.append(p)
        p.wait_port(port)
        return port

    yield run
    for p in started:
        p.stop()


def files_of(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def test_nginx_routes_users_to_their_backend(server, areas, nginx_front):
    a = areas("alice", "alice-pw", 2)
    b = areas("bob", "bob-pw", 3)
    alice_drop = os.path.join(a.base, "alice")
    bob_drop = os.path.join(b.base, "bob")
    pa = start(server, a.base, "--users", a.users, "--allow-plaintext",
               "--user", "nobody", "--proxy-from", "127.0.0.1")
    pb = start(server, b.base, "--users", b.users, "--allow-plaintext",
               "--user", "nobody", "--proxy-from", "127.0.0.1")

    class Handler(AuthHandler):
        routes = {"alice": ("alice-pw", pa.port), "bob": ("bob-pw", pb.port)}
        seen = []

    auth = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    try:
        port = nginx_front(auth.server_address[1])
        alice_files = files_of(alice_drop)
        bob_files = files_of(bob_drop)

        # alice with poplib from 127.0.0.7: only her mail, byte-exact.
        p = FromSource("127.0.0.1", port, timeout=TIMEOUT)
        p.user("alice")
        assert p.pass_("alice-pw").startswith(b"+OK")
        count, _ = p.stat()
        assert count == len(alice_files)
        got = []
        for i in range(1, count + 1):
            _, lines, _ = p.retr(i)
            got.append(b"".join(line + b"\r\n" for line in lines))
        assert sorted(got) == sorted(wire(d) for d in alice_files.values())
        p.dele(1)
        assert p.quit().startswith(b"+OK")
        assert len(os.listdir(alice_drop)) == len(alice_files) - 1
        assert files_of(bob_drop) == bob_files

        # bob with curl from 127.0.0.8: RETR byte-exact, then DELE.
        url = "pop3://127.0.0.1:%d/" % port
        curl = ["curl", "-sS", "--max-time", str(TIMEOUT), "--interface",
                "127.0.0.8", "-u", "bob:bob-pw"]
        r = subprocess.run(curl + [url + "2"], capture_output=True,
                           timeout=TIMEOUT * 2)
        assert r.returncode == 0, r.stderr
        assert r.stdout in [wire(d) for d in bob_files.values()]
        r = subprocess.run(curl + ["-X", "DELE", "-I", url + "1"],
                           capture_output=True, timeout=TIMEOUT * 2)
        assert r.returncode == 0, r.stderr
        assert len(os.listdir(bob_drop)) == len(bob_files) - 1

        # A wrong password: refused by auth_http, nothing reaches pop3d.
        p = FromSource("127.0.0.1", port, timeout=TIMEOUT)
        p.user("bob")
        with pytest.raises(poplib.error_proto) as e:
            p.pass_("alice-pw")
        assert b"Invalid login or password" in str(e.value).encode()
        p.close()
        assert len(os.listdir(bob_drop)) == len(bob_files) - 1

        # nginx saw the real client; so did each pop3d, thanks to the
        # header: its log shows 127.0.0.7/127.0.0.8, never nginx's address.
        assert ("/pop3-auth", "alice", "127.0.0.7", "pop3") in Handler.seen
        log_a = wait_log(pa, "session end: 127.0.0.7:")
        log_b = wait_log(pb, "session end: 127.0.0.8:")
        for log in (log_a, log_b):
            assert b"session start: 127.0.0.1:" not in log
        assert b"127.0.0.8" not in log_a and b"127.0.0.7" not in log_b
    finally:
        auth.shutdown()
        auth.server_close()


# ---- HAProxy, two pop3d listeners on one shared maildrop ----

CLIENTS = 20
PER_CLIENT = 3


def shared_maildrop(folder):
    os.makedirs(folder)
    for c in range(CLIENTS):
        for m in range(PER_CLIENT):
            with open(os.path.join(folder, "c%02d-m%d" % (c, m)), "wb") as f:
                f.write(b"X-Client: %d\r\nSubject: message %d of client %d"
                        b"\r\n\r\n.a line that needs stuffing\r\nbody %d %d\n"
                        % (c, m, c, c, m))


@pytest.fixture
def haproxy_front(tmp_path):
    need("/usr/sbin/haproxy")
    started = []

    def run(backends):
        port = free_port()
        subs = [("bind :110", "bind 127.0.0.1:%d" % port)]
        for i, b in enumerate(backends, 1):
            subs.append(("mail%d.example.org:110" % i, "127.0.0.1:%d" % b))
        with open(tmp_path / "haproxy-pop3.cfg", "w") as f:
            f.write(shipped("haproxy-pop3.cfg", subs))
        with open(tmp_path / "global.cfg", "w") as f:
            f.write("global\n    maxconn 256\n\n"
                    "defaults\n    timeout connect 5s\n"
                    "    timeout client 1m\n    timeout server 1m\n")
        p = Proc(["/usr/sbin/haproxy", "-db", "-f", str(tmp_path /
                  "global.cfg"), "-f", str(tmp_path / "haproxy-pop3.cfg")],
                 str(tmp_path / "haproxy.log"))
        started.append(p)
        p.wait_port(port)
        return port

    yield run
    for p in started:
        p.stop()


def test_haproxy_round_robin_shared_maildrop(server, tmp_path, haproxy_front):
    """20 clients at once through HAProxy, each retrieving and deleting its
    own messages on a maildrop two pop3d share: every message delivered
    and removed exactly once, nothing else touched, both back ends used."""
    drop = str(tmp_path / "shared")
    shared_maildrop(drop)
    want = {n: wire(d) for n, d in files_of(drop).items()}
    s1 = start(server, drop, "--proxy-from", "127.0.0.1")
    s2 = start(server, drop, "--proxy-from", "127.0.0.1")
    port = haproxy_front([s1.port, s2.port])

    delivered = []
    errors = []
    barrier = threading.Barrier(CLIENTS)

    def client(c):
        try:
            sock = socket.create_connection(("127.0.0.1", port), TIMEOUT,
                                            source_address=("127.0.0.7", 0))
            conn = Conn(sock=sock)
            barrier.wait(TIMEOUT * 2)
            count = int(conn.cmd("STAT").split()[1])
            mine = []
            for n in range(1, count + 1):
                status, head = conn.multi("TOP %d 0" % n)
                if status.startswith(b"+OK") and \
                        head[0] == b"X-Client: %d" % c:
                    mine.append(n)
            assert len(mine) == PER_CLIENT, (c, mine)
            for n in mine:
                status, lines = conn.multi("RETR %d" % n)
                assert status.startswith(b"+OK"), status
                delivered.append((c, b"".join(l + b"\r\n" for l in lines)))
                assert conn.cmd("DELE %d" % n).startswith(b"+OK")
            assert conn.cmd("QUIT").startswith(b"+OK")
            conn.close()
        except Exception as e:  # reported by the main thread
            errors.append((c, e))

    threads = [threading.Thread(target=client, args=(c,))
               for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 12)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors[:3]
    assert sorted(d for _, d in delivered) == sorted(want.values())
    for c, d in delivered:
        assert d.startswith(b"X-Client: %d\r\n" % c)
    assert os.listdir(drop) == []
    # Round robin: both back ends served sessions for 127.0.0.7, none for
    # HAProxy itself (its health checks send LOCAL headers: refused).
    for s in (s1, s2):
        log = wait_log(s, "session end: 127.0.0.7:")
        assert b"session start: 127.0.0.1:" not in log
    served = sum(s.output().count(b"session start: 127.0.0.7:")
                 for s in (s1, s2))
    assert served == CLIENTS
