"""pop3d against independent clients: Python's poplib, curl, fetchmail."""
import os
import poplib
import shutil
import subprocess

import pytest

from server_util import TIMEOUT, messages, pop3d, read, wire  # noqa: F401


def lines_of(data):
    return wire(data).split(b"\r\n")[:-1]


def test_poplib_full_session(pop3d, maildrop):
    names = messages(maildrop)
    total = sum(len(wire(read(maildrop, n))) for n in names)
    srv = pop3d(maildrop)
    p = poplib.POP3("127.0.0.1", srv.port, timeout=TIMEOUT)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING"):
        assert cap in caps, caps
    assert p.user("dana").startswith(b"+OK")
    assert p.pass_("whatever").startswith(b"+OK")
    assert p.stat() == (len(names), total)
    resp, listing, octets = p.list()
    assert resp.startswith(b"+OK")
    assert [int(l.split()[1]) for l in listing] == \
        [len(wire(read(maildrop, n))) for n in names]
    for i, name in enumerate(names, 1):
        resp, lines, octets = p.retr(i)
        assert resp.startswith(b"+OK")
        assert lines == lines_of(read(maildrop, name)), name
        resp, lines, octets = p.top(i, 0)
        assert lines[-1] == b"" and b"" not in lines[:-1]
    resp, uids, _ = p.uidl()
    assert len(uids) == len(names)
    assert p.uidl(1).split()[1] == b"1"
    p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    p.rset()
    p.dele(len(names))
    assert p.quit().startswith(b"+OK")
    assert sorted(os.listdir(maildrop)) == sorted(names[:-1])


def test_poplib_no_login(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    p = poplib.POP3("127.0.0.1", srv.port, timeout=TIMEOUT)
    assert p.stat()[0] == len(names)
    with pytest.raises(poplib.error_proto):
        p.retr(len(names) + 1)
    p.noop()
    p.quit()


def curl(*args, check=True):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    r = subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT + 5)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def test_curl_list_retr_dele(pop3d, maildrop):
    names = messages(maildrop)
    srv = pop3d(maildrop)
    url = "pop3://127.0.0.1:%d/" % srv.port
    r = curl(url)
    listing = r.stdout.split(b"\r\n")[:-1]
    assert listing == [b"%d %d" % (i, len(wire(read(maildrop, n))))
                       for i, n in enumerate(names, 1)]
    # RETR n through curl (which undoes the byte-stuffing)
    for i, name in enumerate(names, 1):
        r = curl(url + str(i))
        assert r.stdout == wire(read(maildrop, name)), name
    # with a login too (any name works on the open maildrop)
    r = curl("-u", "dana:secret", url + "1")
    assert r.stdout == wire(read(maildrop, names[0]))
    # custom commands
    r = curl("-X", "UIDL", url)
    uids = r.stdout.split(b"\r\n")[:-1]
    assert len(uids) == len(names)
    r = curl("-X", "TOP 1 0", url)
    assert r.stdout.endswith(b"\r\n\r\n")
    r = curl("-X", "DELE", "-I", url + "2")
    assert r.returncode == 0
    assert not os.path.exists(os.path.join(maildrop, names[1]))
    r = curl(url + str(len(names) + 5), check=False)
    assert r.returncode != 0


def test_curl_message_with_dot_lines(pop3d, maildrop):
    names = messages(maildrop)
    i = [k for k, n in enumerate(names, 1) if "dot" in n][0]
    srv = pop3d(maildrop)
    r = curl("pop3://127.0.0.1:%d/%d" % (srv.port, i))
    assert r.stdout == wire(read(maildrop, names[i - 1]))


FETCHMAILRC = """\
set no bouncemail
poll 127.0.0.1 with protocol pop3 port {port} auth password
    user "dana" there with password "anything" is "root" here
    {keep} fetchall no rewrite sslproto ''
    mda "/bin/sh -c 'cat > $(mktemp {out}/msg.XXXXXX)'"
"""


def fetchmail(tmp_path, port, keep):
    if not shutil.which("fetchmail"):
        pytest.skip("fetchmail not installed")
    out = tmp_path / "fetched"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(FETCHMAILRC.format(port=port, out=out,
                                     keep="keep" if keep else "no keep"))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    # Its own lock file: as root, fetchmail's default one is system-wide,
    # and another run of the suite may hold it.
    r = subprocess.run(["fetchmail", "--fetchmailrc", str(rc), "--nodetach",
                        "--nosyslog", "-v",
                        "--pidfile", str(tmp_path / "fetchmail.pid")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=60)
    return r, out


def body_of(data):
    """Message body with LF line ends (fetchmail adds a Received header)."""
    text = data.replace(b"\r\n", b"\n")
    return text.split(b"\n\n", 1)[1]


def test_fetchmail_keep_then_fetch(pop3d, maildrop, tmp_path):
    names = messages(maildrop)
    srv = pop3d(maildrop, "--order", "arrival")
    (tmp_path / "a").mkdir()
    r, out = fetchmail(tmp_path / "a", srv.port, keep=True)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    got = sorted(body_of(read(os.path.join(out, f)))
                 for f in os.listdir(out))
    want = sorted(body_of(wire(read(maildrop, n))) for n in names)
    assert got == want
    assert sorted(os.listdir(maildrop)) == sorted(names)   # kept
    # without keep: fetched and deleted
    (tmp_path / "b").mkdir()
    r, out = fetchmail(tmp_path / "b", srv.port, keep=False)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    assert len(os.listdir(out)) == len(names)
    assert os.listdir(maildrop) == []
