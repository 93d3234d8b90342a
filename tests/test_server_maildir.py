"""pop3d on Maildir maildrops filled by real delivery agents (procmail,
Dovecot's LDA, getmail6), read back with poplib, curl, fetchmail and raw
sessions (SPEC 2, Maildir)."""
import os
import poplib
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import traced_env, POP3D, TIMEOUT, free_port
from maildir_util import (AGENTS, agents, base, delivered,  # noqa: F401
                          delivery_order, next_second, sample)
from server_util import Pop, ServerClosed, pop3d, wait_for, wire  # noqa: F401
from test_server_clients import body_of, curl, fetchmail


def fill(agents, per_agent=2):
    """per_agent messages from each agent, interleaved; returns what is on
    disk afterwards, and the base names in delivery order."""
    i = 0
    for _ in range(per_agent):
        for agent in AGENTS:
            i += 1
            agents.deliver(agent, sample(i, agent))
    msgs = delivered(agents.maildir)
    assert len(msgs) == per_agent * len(AGENTS)
    assert all(m[0] == "new" for m in msgs.values())
    return msgs, delivery_order(msgs)


def listing(maildir, sub):
    return sorted(os.listdir(os.path.join(maildir, sub)))


def test_agents_poplib_exact_and_stable(pop3d, agents):
    """Every message byte-exact with its exact size, numbered by delivery
    time; UIDL the base name, the same before and after the move to cur/
    and in the next session."""
    msgs, order = fill(agents)
    # Dovecot's LDA writes its index files beside cur/new/tmp: not mail.
    assert any(n.startswith("dovecot") for n in os.listdir(agents.maildir))
    sizes = [len(wire(msgs[b][2])) for b in order]
    srv = pop3d(agents.maildir)
    p = poplib.POP3("127.0.0.1", srv.port, timeout=TIMEOUT)
    assert p.user("dana").startswith(b"+OK")
    assert p.pass_("x").startswith(b"+OK")
    assert p.stat() == (len(order), sum(sizes))
    resp, lst, _ = p.list()
    assert [int(line.split()[1]) for line in lst] == sizes
    resp, uids, _ = p.uidl()
    assert [u.split()[1].decode() for u in uids] == order
    for i, b in enumerate(order, 1):
        resp, lines, octets = p.retr(i)
        assert lines == wire(msgs[b][2]).split(b"\r\n")[:-1], b
        assert octets >= sizes[i - 1]
    assert p.quit().startswith(b"+OK")

    # All moved to cur/ with ":2," appended, bytes untouched; new/ empty.
    assert listing(agents.maildir, "new") == []
    assert listing(agents.maildir, "cur") == sorted(b + ":2," for b in order)
    after = delivered(agents.maildir)
    assert {b: m[2] for b, m in after.items()} == \
        {b: m[2] for b, m in msgs.items()}

    # Next session, raw: same ids, same sizes, byte-exact on the wire.
    c = Pop(srv.port)
    assert c.uidl_list() == {i: b.encode() for i, b in enumerate(order, 1)}
    assert c.scan_list() == {i: s for i, s in enumerate(sizes, 1)}
    for i, b in enumerate(order, 1):
        status, text = c.multi_raw("RETR %d" % i)
        assert status == b"+OK %d octets" % sizes[i - 1], status
        assert text == wire(msgs[b][2])
    c.quit()


def test_dele_removes_even_after_imap_flag_change(pop3d, agents):
    """Between LIST and QUIT an IMAP client renames ':2,' to ':2,S' (and
    other flags): DELE+QUIT still removes those files, RETR of a renamed
    message still works, and the rest stays."""
    msgs, order = fill(agents)
    srv = pop3d(agents.maildir)
    c = Pop(srv.port)
    assert c.stat()[0] == 6
    c.scan_list()
    cur = os.path.join(agents.maildir, "cur")

    def flag(b, flags):
        old = next(n for n in os.listdir(cur) if base(n) == b)
        os.rename(os.path.join(cur, old), os.path.join(cur, b + ":2," + flags))

    c.ok("DELE 1")
    flag(order[0], "S")          # after DELE, before QUIT
    flag(order[1], "RS")         # before DELE
    c.ok("DELE 2")
    flag(order[2], "S")          # RETR after a flag change
    status, text = c.multi_raw("RETR 3")
    assert text == wire(msgs[order[2]][2])
    flag(order[2], "ST")
    status, text = c.multi_raw("TOP 3 0")
    assert status.startswith(b"+OK")
    c.ok("DELE 4")
    flag(order[3], "FS")
    flag(order[3], "S")
    st = c.quit()
    assert st == b"+OK pop3d signing off (3 messages left)", st
    left = listing(agents.maildir, "cur")
    assert left == sorted([order[2] + ":2,ST"] +
                          [b + ":2," for b in order[4:]])
    c = Pop(srv.port)
    assert c.uidl_list() == {1: order[2].encode(), 2: order[4].encode(),
                             3: order[5].encode()}
    c.quit()


def test_tmp_dotfiles_and_folders_never_served(pop3d, agents):
    msgs, order = fill(agents, per_agent=1)
    md = agents.maildir
    with open(os.path.join(md, "tmp", "1795000000.P1.host"), "wb") as f:
        f.write(b"Subject: half written\n\n")
    with open(os.path.join(md, "new", ".1795000000.P2.host"), "wb") as f:
        f.write(b"Subject: hidden in new\n\n")
    with open(os.path.join(md, "cur", ".hidden:2,"), "wb") as f:
        f.write(b"Subject: hidden in cur\n\n")
    os.mkdir(os.path.join(md, "cur", "1795000000.dir:2,"))
    os.symlink(os.path.join(md, "tmp", "1795000000.P1.host"),
               os.path.join(md, "cur", "1795000000.link:2,"))
    os.symlink(os.path.join(md, "tmp", "1795000000.P1.host"),
               os.path.join(md, "new", "1795000001.link"))
    srv = pop3d(md)
    c = Pop(srv.port)
    assert c.stat() == (3, sum(len(wire(m[2])) for m in msgs.values()))
    assert c.uidl_list() == {i: b.encode() for i, b in enumerate(order, 1)}
    for i in (1, 2, 3):
        c.ok("DELE %d" % i)
    c.quit()
    assert os.listdir(os.path.join(md, "tmp")) == ["1795000000.P1.host"]
    assert listing(md, "new") == [".1795000000.P2.host", "1795000001.link"]
    assert listing(md, "cur") == [".hidden:2,", "1795000000.dir:2,",
                                  "1795000000.link:2,"]


def test_mail_delivered_during_a_session_comes_in_the_next(pop3d, agents):
    msgs, order = fill(agents, per_agent=1)
    srv = pop3d(agents.maildir)
    a = Pop(srv.port)
    before = a.stat()
    uids = a.uidl_list()
    next_second()
    name = agents.deliver("procmail", sample(99, "procmail"))
    assert a.stat() == before
    assert a.uidl_list() == uids
    status, text = a.multi_raw("RETR 3")
    assert text == wire(msgs[order[2]][2])
    a.quit()
    assert listing(agents.maildir, "new") == [name]   # not this session's
    b = Pop(srv.port)
    assert b.stat()[0] == 4
    assert b.uidl_list()[4] == name.encode()
    status, text = b.multi_raw("RETR 4")
    assert text == wire(sample(99, "procmail"))
    b.quit()
    assert listing(agents.maildir, "new") == []


def test_curl(pop3d, agents):
    msgs, order = fill(agents, per_agent=1)
    srv = pop3d(agents.maildir)
    url = "pop3://127.0.0.1:%d/" % srv.port
    r = curl(url)
    assert r.stdout.split(b"\r\n")[:-1] == [
        b"%d %d" % (i, len(wire(msgs[b][2]))) for i, b in enumerate(order, 1)]
    for i, b in enumerate(order, 1):
        assert curl(url + str(i)).stdout == wire(msgs[b][2])
    r = curl("-X", "UIDL", url)
    assert r.stdout.split(b"\r\n")[:-1] == [
        b"%d %s" % (i, b.encode()) for i, b in enumerate(order, 1)]
    curl("-X", "DELE", "-I", url + "2")
    assert listing(agents.maildir, "cur") == sorted(
        [order[0] + ":2,", order[2] + ":2,"])


def test_fetchmail_keep_then_fetch(pop3d, agents, tmp_path):
    msgs, order = fill(agents, per_agent=1)
    srv = pop3d(agents.maildir)
    want = sorted(body_of(wire(m[2])) for m in msgs.values())
    (tmp_path / "a").mkdir()
    r, out = fetchmail(tmp_path / "a", srv.port, keep=True)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    assert sorted(body_of(open(os.path.join(out, f), "rb").read())
                  for f in os.listdir(out)) == want
    assert len(listing(agents.maildir, "cur")) == 3     # kept
    (tmp_path / "b").mkdir()
    r, out = fetchmail(tmp_path / "b", srv.port, keep=False)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    assert len(os.listdir(out)) == 3
    assert listing(agents.maildir, "cur") == []
    assert listing(agents.maildir, "new") == []


def maildir_grader_flow(port, maildir):
    """The grader's flow on a Maildir: STAT, LIST, RETR, TOP, DELE, QUIT,
    then a new session that no longer sees the message."""
    msgs = delivered(maildir)
    order = delivery_order(msgs)
    sizes = [len(wire(msgs[b][2])) for b in order]
    c = Pop(port)
    assert c.cmd("STAT") == b"+OK %d %d" % (len(order), sum(sizes))
    assert c.scan_list() == {i: s for i, s in enumerate(sizes, 1)}
    status, text = c.multi_raw("RETR 1")
    assert text == wire(msgs[order[0]][2])
    status, top = c.multi_raw("TOP 1 0")
    assert top == wire(msgs[order[0]][2]).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    c.ok("DELE 1")
    c.quit()
    assert c.wait_closed()
    assert order[0] not in delivered(maildir)
    c = Pop(port)
    assert c.cmd("STAT") == b"+OK %d %d" % (len(order) - 1, sum(sizes[1:]))
    c.quit()


def test_grader_flow_listener(pop3d, agents):
    fill(agents, per_agent=1)
    srv = pop3d(agents.maildir)
    maildir_grader_flow(srv.port, agents.maildir)


def test_grader_flow_inetd(agents):
    """One session per connection on stdin/stdout, as under xinetd or
    systemd's Accept=yes, with the layout stated as the shipped files do."""
    fill(agents, per_agent=1)
    port = free_port()
    proc = subprocess.Popen(
        ["systemd-socket-activate", "--accept", "--inetd",
         "-l", "127.0.0.1:%d" % port, POP3D, "--layout", "maildir",
         agents.maildir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for(lambda: _listening(port))
        maildir_grader_flow(port, agents.maildir)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=TIMEOUT)


def _listening(port):
    with open("/proc/net/tcp") as f:
        return any((":%04X" % port) in line.split()[1] and
                   line.split()[3] == "0A" for line in f.readlines()[1:])


def test_two_sessions_delete_exactly_marked(pop3d, agents):
    msgs, order = fill(agents)
    srv = pop3d(agents.maildir)
    a = Pop(srv.port)
    b = Pop(srv.port)
    assert a.stat()[0] == 6 and b.stat()[0] == 6
    a.ok("DELE 1")
    a.ok("DELE 2")
    b.ok("DELE 2")
    b.ok("DELE 3")
    a.quit()
    assert sorted(delivered(agents.maildir)) == sorted(order[2:])
    assert b.cmd("RETR 1").startswith(b"-ERR [SYS/TEMP]")
    status, text = b.multi_raw("RETR 4")
    assert text == wire(msgs[order[3]][2])
    b.quit()
    assert sorted(delivered(agents.maildir)) == sorted(order[3:])


def test_many_sessions_race_to_delete(pop3d, agents):
    fill(agents)
    srv = pop3d(agents.maildir)
    conns = [Pop(srv.port) for _ in range(10)]
    for c in conns:
        assert c.stat()[0] == 6
        for i in range(1, 7):
            c.ok("DELE %d" % i)
    for c in conns:
        c.send("QUIT\r\n")
    for c in conns:
        assert c.line().startswith(b"+OK")
    assert delivered(agents.maildir) == {}


def test_concurrent_first_sessions_see_each_message_once(pop3d, agents):
    """Sessions that start at once all move new/ to cur/: each message is
    moved once and every session sees every message exactly once."""
    for i in range(30):
        agents.deliver(AGENTS[i % 3], sample(i, AGENTS[i % 3]))
    order = delivery_order(delivered(agents.maildir))
    srv = pop3d(agents.maildir)
    conns = [Pop(srv.port) for _ in range(8)]
    results = [None] * len(conns)
    barrier = threading.Barrier(len(conns))

    def run(k):
        barrier.wait(TIMEOUT)
        results[k] = conns[k].uidl_list()

    threads = [threading.Thread(target=run, args=(k,))
               for k in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
    want = {i: b.encode() for i, b in enumerate(order, 1)}
    assert all(r == want for r in results), results
    for c in conns:
        c.quit()
    assert listing(agents.maildir, "new") == []
    assert listing(agents.maildir, "cur") == sorted(b + ":2," for b in order)


def test_exclusive_and_delete_now(pop3d, agents):
    msgs, order = fill(agents, per_agent=1)
    srv = pop3d(agents.maildir, "--exclusive", "--lock-wait", "1")
    a = Pop(srv.port)
    a.stat()
    b = Pop(srv.port)
    assert b.cmd("STAT").startswith(b"-ERR [IN-USE]")
    a.quit()
    srv2 = pop3d(agents.maildir, "--delete-now")
    c = Pop(srv2.port)
    c.ok("DELE 2")
    assert order[1] not in delivered(agents.maildir)
    c.send("\r\n")      # not a QUIT: the removal stands anyway
    c.close()
    assert sorted(delivered(agents.maildir)) == [order[0], order[2]]


def test_layout_options(pop3d, agents, maildrop):
    """--layout flat serves a Maildir's top folder as flat (its files:
    here Dovecot's index files); --layout maildir refuses a folder that is
    no Maildir."""
    fill(agents, per_agent=1)
    top = [n for n in os.listdir(agents.maildir)
           if os.path.isfile(os.path.join(agents.maildir, n))]
    srv = pop3d(agents.maildir, "--layout", "flat")
    c = Pop(srv.port)
    assert c.stat()[0] == len(top)
    c.quit()
    assert len(listing(agents.maildir, "new")) == 3
    r = subprocess.run([POP3D, "--layout", "maildir", str(maildrop)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 66
    assert b"not a Maildir" in r.stderr
    r = subprocess.run([POP3D, "--layout", "mbox", str(maildrop)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 64
    srv = pop3d(agents.maildir, "--layout", "maildir")
    c = Pop(srv.port)
    assert c.stat()[0] == 3
    c.quit()
    # auto on the flat samples: flat as always
    srv = pop3d(maildrop)
    c = Pop(srv.port)
    assert c.stat()[0] == len(os.listdir(maildrop))
    c.quit()


def test_users_maildir_and_flat(pop3d, agents):
    """Under --users each user's maildrop follows the same rule: a Maildir
    where it has cur/, new/, tmp/, flat otherwise."""
    from auth_util import mkpasswd
    msgs, order = fill(agents, per_agent=1)
    flat = os.path.join(agents.base, "flat")
    os.mkdir(flat)
    with open(os.path.join(flat, "01.eml"), "wb") as f:
        f.write(b"Subject: flat\n\nhello\n")
    h = mkpasswd("yescrypt", "pw")
    users = os.path.join(agents.base, "users")
    with open(users, "w") as f:
        f.write("anna:%s:%s\nbob:%s:%s\n" % (h, agents.maildir, h, flat))
    if os.geteuid() == 0:
        for p in (flat, os.path.join(flat, "01.eml"), users):
            os.chown(p, 65534, 65534)
    srv = pop3d(agents.base, "--users", users, "--user", "nobody")
    a = Pop(srv.port)
    a.ok("USER anna")
    a.ok("PASS pw")
    assert a.uidl_list() == {i: b.encode() for i, b in enumerate(order, 1)}
    a.quit()
    assert listing(agents.maildir, "new") == []
    b = Pop(srv.port)
    b.ok("USER bob")
    b.ok("PASS pw")
    assert b.stat() == (1, len(wire(b"Subject: flat\n\nhello\n")))
    b.quit()


GDB = shutil.which("gdb")


@pytest.mark.skipif(GDB is None, reason="gdb not installed")
def test_imap_flag_change_at_the_moment_of_removal(tmp_path):
    """An IMAP client renames a marked message (':2,' to ':2,S') at the
    very moment QUIT removes it (gdb stops pop3d at the rename that moves
    it aside): it is found under its new name and removed all the same."""
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    a = md / "cur" / "1000000000.M1P1.host:2,"
    b = md / "cur" / "1000000100.M2P2.host:2,"
    a.write_bytes(b"Subject: a\n\nto be removed\n")
    b.write_bytes(b"Subject: b\n\nkept\n")
    inp, out, hit = tmp_path / "in", tmp_path / "out", tmp_path / "hit"
    inp.write_bytes(b"UIDL\r\nDELE 1\r\nQUIT\r\n")
    script = tmp_path / "gdb.cmds"
    script.write_text(
        "set breakpoint pending on\n"
        "set pagination off\n"
        "set confirm off\n"
        "break renameat2\n"
        "commands\n"
        "silent\n"
        "shell mv %s %sS && touch %s\n"
        "delete\n"
        "continue\n"
        "end\n"
        "run --layout maildir %s <%s >%s 2>/dev/null\n"
        % (a, a, hit, md, inp, out))
    subprocess.run([GDB, "-batch", "-nx", "-x", str(script), POP3D],
                   env=traced_env(),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120, check=True)
    assert hit.exists(), "pop3d never called renameat2 while removing"
    lines = out.read_bytes().split(b"\r\n")
    assert lines[2:4] == [b"1 1000000000.M1P1.host",
                          b"2 1000000100.M2P2.host"], lines
    assert lines[-2] == b"+OK pop3d signing off (1 messages left)", lines
    assert os.listdir(md / "cur") == [b.name]
    assert os.listdir(md / "new") == []


def stdio_session(md, idx, commands, strace=False):
    """One stdio session (as under inetd) with --index-dir idx; returns
    the reply and, under strace, the names opened relative to a folder."""
    argv = [POP3D, "--index-dir", str(idx), str(md)]
    log = str(idx) + ".strace"
    if strace:
        argv = ["strace", "-f", "-o", log, "-e", "trace=openat"] + argv
    r = subprocess.run(argv, input=commands, capture_output=True,
                       timeout=TIMEOUT * 3, env=traced_env())
    assert r.returncode == 0, r
    opened = []
    if strace:
        with open(log) as f:
            opened = re.findall(r'openat\(\d+, "([^"/]+)"', f.read())
        os.unlink(log)
    return r.stdout, opened


def settle(path):
    """Wait until path's mtime and ctime are over a second old: only then
    may the index stand for a listing of it."""
    deadline = time.time() + TIMEOUT
    while True:
        st = os.stat(path)
        if max(st.st_mtime, st.st_ctime) + 2.2 < time.time():
            return
        assert time.time() < deadline
        time.sleep(0.1)


@pytest.mark.skipif(shutil.which("strace") is None,
                    reason="strace not installed")
def test_index_covers_maildir(agents, tmp_path):
    """The index covers cur/: an unchanged Maildir is listed without
    opening a message.  A flag change moves a file's ctime: it is read
    again, unless Dovecot's ",W=" size in its name is the one the index
    holds (a wrong ",W=" is not believed).  A file rewritten in place with
    its size and mtime put back, then renamed by a reader, is listed with
    its true size."""
    for i, agent in enumerate(AGENTS):
        agents.deliver(agent, sample(i, agent))
    name = agents.deliver("procmail", b"Subject: short\n\nabc\n")
    new = os.path.join(agents.maildir, "new")
    os.rename(os.path.join(new, name), os.path.join(new, name + ",W=1"))
    idx = tmp_path / "idx"
    idx.mkdir()
    md = agents.maildir
    cur = os.path.join(md, "cur")
    q = b"STAT\r\nLIST\r\nUIDL\r\nQUIT\r\n"
    first, _ = stdio_session(md, idx, q)            # moves new/ to cur/
    assert os.listdir(idx), "no index written"
    settle(cur)
    out, opened = stdio_session(md, idx, q, strace=True)
    assert out == first
    names = set(os.listdir(cur))
    assert not names & set(opened), opened          # no message opened
    out, opened = stdio_session(md, idx, q, strace=True)
    assert out == first and not names & set(opened)

    # A reader marks messages seen (renames them to ":2,S").
    msgs = delivered(md)
    by = {a: next(m[1] for m in msgs.values() if b"by " + a.encode() in m[2])
          for a in AGENTS}
    short = msgs[name + ",W=1"][1]
    assert ",W=" in by["dovecot"] and short.endswith(",W=1:2,")
    for n in (by["procmail"], by["dovecot"], short):
        os.rename(os.path.join(cur, n), os.path.join(cur, n + "S"))
    settle(cur)
    out, opened = stdio_session(md, idx, q, strace=True)
    assert out == first
    assert sorted(n for n in opened if n.endswith(":2,S")) == \
        sorted([by["procmail"] + "S", short + "S"]), opened

    # "abc\n" becomes "a\nb\n": same length, one more line on the wire.
    p = os.path.join(cur, short + "S")
    st = os.stat(p)
    data = open(p, "rb").read()
    with open(p, "r+b") as f:
        f.write(data.replace(b"abc\n", b"a\nb\n"))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(p, p + "T")
    settle(cur)
    out, _ = stdio_session(md, idx, b"LIST 4\r\nRETR 4\r\nQUIT\r\n")
    lines = out.split(b"\r\n")
    true = wire(data.replace(b"abc\n", b"a\nb\n"))
    assert lines[1] == b"+OK 4 %d" % len(true), lines
    assert b"\r\n".join(lines[3:-3]) + b"\r\n" == true, lines
