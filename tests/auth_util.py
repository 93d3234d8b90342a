"""Helpers for tests/test_auth_tls.py: users, maildrops, certificates,
network namespaces and TLS connections for pop3d's --users/--tls modes.

pop3d refuses to serve a user database as root, so the tests (run as root)
pass --user nobody; everything the server reads or writes after dropping
privileges lives in a 0755 folder under /var/tmp owned by nobody (pytest's
tmp_path sits under a 0700 folder nobody cannot enter).
"""
import base64
import ctypes
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from conftest import POP3D, TIMEOUT, Server, free_port  # noqa: F401

NOBODY = pwd.getpwnam("nobody")


def run(argv, timeout=TIMEOUT, **kw):
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, **kw)


def mkpasswd(method, password):
    """A crypt(3) hash: method is a mkpasswd -m name, or 'openssl-6'."""
    if method == "openssl-6":
        argv = ["openssl", "passwd", "-6", "-stdin"]
    else:
        argv = ["mkpasswd", "-m", method, "--stdin"]
    r = subprocess.run(argv, input=password.encode(), capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def make_certs(folder):
    """A test CA and a server certificate for localhost and 127.0.0.1."""
    ca_key = os.path.join(folder, "ca.key")
    ca = os.path.join(folder, "ca.pem")
    key = os.path.join(folder, "server.key")
    csr = os.path.join(folder, "server.csr")
    cert = os.path.join(folder, "server.pem")
    ext = os.path.join(folder, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
         "-out", ca, "-days", "2", "-subj", "/CN=pop3d test CA"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
         "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext],
    ]
    for argv in steps:
        r = run(argv)
        assert r.returncode == 0, (argv, r.stderr)
    os.chmod(key, 0o600)   # read by root before --user drops privileges
    return {"ca": ca, "cert": cert, "key": key}


def client_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    return ctx


def plain_b64(authz, authc, password):
    raw = b"\0".join(x.encode() for x in (authz, authc, password))
    return base64.b64encode(raw).decode()


class Area:
    """A /var/tmp folder owned by nobody: MAILDROP base, users file."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="pop3d-auth-", dir="/var/tmp")
        os.chmod(self.root, 0o755)
        self.base = os.path.join(self.root, "drops")
        self.users = os.path.join(self.root, "users")
        self.mkdir(self.base)
        self.write_users([])

    def own(self, path):
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)

    def mkdir(self, path):
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        self.own(path)
        return path

    def maildrop(self, name, messages, parent=None):
        """A maildrop folder holding messages (a list of bytes)."""
        path = self.mkdir(os.path.join(parent or self.base, name))
        for i, data in enumerate(messages, 1):
            f = os.path.join(path, "%02d.eml" % i)
            with open(f, "wb") as fh:
                fh.write(data)
            self.own(f)
        return path

    def write_users(self, lines):
        """Replace the users file (by rename, as an admin's editor may)."""
        tmp = self.users + ".new"
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.users)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def message(owner, n, body_lines=3):
    body = "".join("%s line %d\r\n" % (owner, i) for i in range(body_lines))
    return ("From: %s@example.org\r\nSubject: %s message %d\r\n\r\n%s"
            % (owner, owner, n, body)).encode()


class TlsServer(Server):
    """pop3d with its own listener, started with an optional prefix (for
    ip netns exec) and waited for without reading a greeting (a --tls
    listener would wait for a ClientHello)."""

    def __init__(self, maildrop, *opts, prefix=(), host="127.0.0.1",
                 port=None):
        super().__init__(maildrop, *opts, port=port, prefix=prefix,
                         wait=False)
        self.host = host
        self.wait(prefix)

    def wait(self, prefix):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pop3d exited with %d: %s" % (
                    self.proc.returncode, self.output()))
            if prefix:
                # inside a namespace: look for the listening socket
                r = run([*prefix, "ss", "-Hltn", "sport = :%d" % self.port])
                if r.stdout.strip():
                    return
            else:
                try:
                    socket.create_connection((self.host, self.port),
                                             timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("pop3d not listening on %d" % self.port)

    def stop_and_log(self):
        """Stop the server and return what it logged to stderr."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        out = self.output()
        self.stop()
        return out


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNs:
    """A network namespace of our own with a dummy interface holding a
    non-loopback address; connect() makes a socket inside it."""

    def __init__(self, name, addr):
        self.name = name
        self.addr = addr
        self.check(["ip", "netns", "add", name])
        try:
            self.check(["ip", "-n", name, "link", "set", "lo", "up"])
            # a veth pair inside the namespace; without veth support the
            # address goes on the namespace's own lo (still not 127/8)
            r = run(["ip", "-n", name, "link", "add", "v0", "type", "veth",
                     "peer", "name", "v1"])
            if r.returncode == 0:
                self.check(["ip", "-n", name, "addr", "add", addr + "/24",
                            "dev", "v0"])
                self.check(["ip", "-n", name, "link", "set", "v1", "up"])
                self.check(["ip", "-n", name, "link", "set", "v0", "up"])
            else:
                self.check(["ip", "-n", name, "addr", "add", addr + "/32",
                            "dev", "lo"])
        except OSError:
            self.delete()
            raise
        self.prefix = ("ip", "netns", "exec", name)

    @staticmethod
    def check(argv):
        r = run(argv)
        if r.returncode != 0:
            raise OSError("%s: %s" % (" ".join(argv),
                                      r.stderr.decode().strip()))

    def socket_connect(self, port, timeout=TIMEOUT):
        """A TCP socket created inside the namespace, connected to
        addr:port there (so the server sees addr as the peer)."""
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                s = socket.create_connection((self.addr, port),
                                             timeout=timeout)
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(target)
        s.settimeout(timeout)
        return s

    def delete(self):
        run(["ip", "netns", "del", self.name])


def children(pid):
    """PIDs whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d))
    return out


def proc_ids(pid):
    """(uids, gids, groups) of a process from /proc/PID/status."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(x) for x in val.split()]
    return ids["Uid"], ids["Gid"], ids["Groups"]


def users_opts(area, certs=None, *extra):
    """pop3d options for area's users file, as nobody, with certs' TLS."""
    opts = ["--users", area.users, "--user", "nobody"]
    if certs:
        opts += ["--tls-cert", certs["cert"], "--tls-key", certs["key"]]
    return opts + list(extra)
