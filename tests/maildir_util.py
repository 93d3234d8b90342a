"""Maildirs filled by real delivery agents, for tests/test_maildir.py.

The messages come from Debian's own delivery agents, never written by the
tests: procmail (DEFAULT=$MAILDIR/), Dovecot's LDA (dovecot-lda with a
private configuration) and getmail6's getmail_maildir.  Dovecot's LDA and
getmail refuse to run as root, so under root every agent runs as the user
nobody (setpriv), in a scratch folder under /tmp that nobody may enter.
"""
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import TIMEOUT

DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
AGENTS = ("procmail", "dovecot", "getmail")

DOVECOT_CONF = """\
mail_location = maildir:{maildir}
mail_home = {home}
log_path = {home}/dovecot.log
info_log_path = {home}/dovecot.log
base_dir = {home}/run
state_dir = {home}/state
"""


def need(path):
    path = shutil.which(path) or path
    if not os.access(path, os.X_OK):
        pytest.skip("%s is not installed" % path)
    return path


class Agents:
    """A scratch folder with a Maildir ("Maildir/") and the three agents
    ready to deliver into it."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="pop3d-maildir.", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.home = os.path.join(self.base, "home")
        self.maildir = os.path.join(self.base, "Maildir")
        os.mkdir(self.home)
        # What maildirmake(1) does: the three folders, owned by the user.
        for sub in ("", "cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), mode=0o700,
                        exist_ok=True)
        self.prefix = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            for root, dirs, files in os.walk(self.base):
                for n in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(n, pw.pw_uid, pw.pw_gid)
            self.prefix = ["setpriv", "--reuid=%d" % pw.pw_uid,
                           "--regid=%d" % pw.pw_gid, "--clear-groups"]
        self.env = dict(os.environ, HOME=self.home, USER="nobody",
                        LOGNAME="nobody")
        with open(os.path.join(self.home, "procmailrc"), "w") as f:
            f.write("DEFAULT=%s/\nLOGFILE=%s/procmail.log\n"
                    % (self.maildir, self.home))
        with open(os.path.join(self.home, "dovecot.conf"), "w") as f:
            f.write(DOVECOT_CONF.format(maildir=self.maildir,
                                        home=self.home))
        self.serial = 0

    def _run(self, argv, data):
        r = subprocess.run(self.prefix + argv, input=data, env=self.env,
                           cwd=self.home, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT * 3)
        assert r.returncode == 0, (argv, r.stdout)

    def deliver(self, agent, data):
        """Deliver data with agent; returns the name it got in new/."""
        before = set(os.listdir(os.path.join(self.maildir, "new")))
        if agent == "procmail":
            self._run([need("procmail"), "-m",
                       os.path.join(self.home, "procmailrc")], data)
        elif agent == "dovecot":
            self._run([need(DOVECOT_LDA), "-c",
                       os.path.join(self.home, "dovecot.conf"),
                       "-f", "sender@example.org"], data)
        elif agent == "getmail":
            self._run([need("getmail_maildir"), self.maildir + "/"], data)
        else:
            raise ValueError(agent)
        new = set(os.listdir(os.path.join(self.maildir, "new"))) - before
        assert len(new) == 1, (agent, new)
        self.serial += 1
        return new.pop()

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


def sample(i, agent, extra=b""):
    """A message with LF line ends, a dot line and a unique subject."""
    return (b"From: Sender <sender@example.org>\n"
            b"To: dana@example.org\n"
            b"Subject: message %d by %s\n"
            b"\n"
            b"Hello %d.\n"
            b".a line that starts with a dot\n"
            b"..and one with two\n"
            b"%s"
            b"last line\n" % (i, agent.encode(), i, extra))


def base(name):
    return name.split(":", 1)[0]


def delivered(maildir):
    """{base name: (folder, name, bytes, mtime_ns)} of the messages on
    disk, in new/ and cur/, dotfiles and non-files left out."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for n in os.listdir(d):
            p = os.path.join(d, n)
            st = os.lstat(p)
            if n.startswith(".") or not stat.S_ISREG(st.st_mode):
                continue
            with open(p, "rb") as f:
                out[base(n)] = (sub, n, f.read(), st.st_mtime_ns)
    return out


def delivery_order(msgs):
    """Base names in delivery order: the name's leading timestamp (else the
    mtime's second), then mtime, then base name."""
    def key(b):
        name, mtime = msgs[b][1], msgs[b][3]
        m = re.match(r"(\d{1,18})\.", name)
        stamp = int(m.group(1)) if m else mtime // 10**9
        return (stamp, mtime, b.encode())
    return sorted(msgs, key=key)


def next_second():
    """Wait until the clock's second changes, so that the next delivery
    has a later timestamp in its name than the ones before."""
    t = int(time.time())
    while int(time.time()) == t:
        time.sleep(0.02)


@pytest.fixture
def agents():
    a = Agents()
    yield a
    a.cleanup()
