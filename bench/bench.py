#!/usr/bin/env python3
"""bench/bench.py: the driver of `make bench` (started by bench/run.sh).

Runs every workload against pop3d, Dovecot (a private instance, when
installed) and the in-memory sender in one run, and writes a markdown table
of medians with min-max spread and ratios to bench/out/results.md (raw
samples in bench/out/results.json, server logs in bench/out/logs/).
"""
import argparse
import datetime
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
PASS = "bench"
HOLD = 100  # idle sessions held for the PSS figure

# Nothing is pre-warmed: one session after a start (or none, for the
# "first session" rows) builds what a server keeps, then sessions land on
# whatever worker accepts them.
FULL = dict(rate_secs=5.0, rate_reps=5, cold_reps=5, warm_reps=5,
            retr_reps=5, pss_reps=3)
QUICK = dict(rate_secs=0.8, rate_reps=3, cold_reps=2, warm_reps=2,
             retr_reps=2, pss_reps=1)
README_BEGIN = "<!-- bench table: begin (written by a full run) -->"
README_END = "<!-- bench table: end -->"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=15.0):
    """Until a TCP connect succeeds (no bytes are sent: not a session)."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            time.sleep(0.3)  # let the pool / login processes settle
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids, out, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pss_kb(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for ln in f:
                    if ln.startswith("Pss:"):
                        total += int(ln.split()[1])
        except OSError:
            pass
    return total, len(tree(pid))


def kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


class Bench:
    def __init__(self, args):
        self.a = args
        self.cfg = QUICK if args.quick else FULL
        self.out = args.out
        self.bin = os.path.join(self.out, "bin")
        self.data = os.path.join(self.out, "data")
        self.logs = os.path.join(self.out, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.samples = {}   # (row, server) -> [values]
        self.cpu = {}       # (row, server) -> [loadgen cpu %]
        self.procs = []
        self.errors = {}    # (row, server) -> failed sessions
        self.dovecot = None
        self.dovecot_why = None
        self.bigfile = os.path.join(self.data, "big", "msg00001")
        # the same size already in wire form (CRLF, no leading '.')
        self.crlffile = os.path.join(self.data, "bigcrlf", "msg00001")
        # pop3d's index folder: empty at the start of every run
        self.index = os.path.join(self.out, "index")
        shutil.rmtree(self.index, ignore_errors=True)
        os.makedirs(self.index)

    # ---------------------------------------------------------- helpers
    def add(self, row, server, value, cpu=None):
        self.samples.setdefault((row, server), []).append(value)
        if cpu is not None:
            self.cpu.setdefault((row, server), []).append(cpu)

    def loadgen(self, *args):
        cmd = [os.path.join(self.bin, "loadgen")] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: "
                               f"{r.stderr.strip()} {r.stdout.strip()}")
        return [kv(ln) for ln in r.stdout.splitlines() if "=" in ln]

    def spawn(self, cmd, name, port):
        logf = open(os.path.join(self.logs, name + ".log"), "ab")
        p = subprocess.Popen(cmd, stdout=logf, stderr=logf,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        try:
            wait_port(port, p)
        except Exception:
            self.stop(p)
            raise
        return p

    def stop(self, p):
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    # ---------------------------------------------------------- servers
    def pop3d(self, drop, index=True):
        """pop3d on a maildrop, with the run's index folder (kept across
        restarts, as /var/cache/pop3d is), or with none."""
        port = free_port()
        p = self.spawn([self.a.pop3d, "--index-dir",
                        self.index if index else "", str(port),
                        os.path.join(self.data, drop)], "pop3d-" + drop, port)
        return p, port

    def setup_dovecot(self):
        if self.a.no_dovecot:
            self.dovecot_why = "disabled with --no-dovecot"
            return
        exe = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
        if exe is None or not os.path.exists("/usr/lib/dovecot/pop3"):
            self.dovecot_why = ("not installed (`make bench-deps` installs "
                                "dovecot-pop3d)")
            return
        try:
            mail = pwd.getpwnam("mail")
        except KeyError:
            self.dovecot_why = "no 'mail' user to run mail processes as"
            return
        r = subprocess.run(["setpriv", f"--reuid={mail.pw_uid}",
                            f"--regid={mail.pw_gid}", "--clear-groups",
                            "test", "-r", self.bigfile])
        if r.returncode != 0:
            self.dovecot_why = (f"user 'mail' cannot read {self.data} "
                                "(use --out under a world-readable path)")
            return
        self.dtmps = []
        for variant in ("reused", "default"):
            tmp = tempfile.mkdtemp(prefix="pop3d-bench-dovecot.")
            self.dtmps.append(tmp)
            os.chmod(tmp, 0o755)
            for d in ("index", "control", "home"):
                os.mkdir(os.path.join(tmp, d))
                os.chown(os.path.join(tmp, d), mail.pw_uid, mail.pw_gid)
            port = free_port()
            with open(os.path.join(HERE, "dovecot.conf.in")) as f:
                conf = f.read()
            reused = variant == "reused"
            conf = (conf.replace("@TMP@", tmp)
                    .replace("@VARIANT@", variant)
                    .replace("@DATA@", os.path.abspath(self.data))
                    .replace("@PORT@", str(port))
                    .replace("@LOG@", os.path.join(
                        os.path.abspath(self.logs),
                        f"dovecot-{variant}-server.log"))
                    .replace("@MAILUID@", str(mail.pw_uid))
                    .replace("@MAILGID@", str(mail.pw_gid))
                    .replace("@LOGIN_TUNING@", "service_count = 0\n  "
                             f"process_min_avail = {os.cpu_count() or 1}"
                             if reused else "")
                    .replace("@POP3_TUNING@",
                             "service_count = 0" if reused else ""))
            path = os.path.join(tmp, "dovecot.conf")
            with open(path, "w") as f:
                f.write(conf)
            if reused:
                self.dconf, self.dport, self.dtmp = path, port, tmp
            else:
                self.dconf_def, self.dport_def = path, port
        self.dexe = exe
        ver = subprocess.run([exe, "--version"], capture_output=True,
                             text=True).stdout.strip()
        self.dovecot = ver or "?"

    def dovecot_start(self, default=False):
        if default:
            return self.spawn([self.dexe, "-F", "-c", self.dconf_def],
                              "dovecot-default", self.dport_def)
        return self.spawn([self.dexe, "-F", "-c", self.dconf], "dovecot",
                          self.dport)

    def dovecot_stop(self, p):
        self.stop(p)
        # the master removes its pid file on exit; wait for the children
        end = time.time() + 10
        while time.time() < end and any(
                c for c in children_map().get(p.pid, [])):
            time.sleep(0.05)

    # ---------------------------------------------------------- workloads
    def rate(self, server, port, user, label="rate"):
        for clients in (1, 16, 64):
            for _ in range(self.cfg["rate_reps"]):
                r = self.loadgen("rate", HOST, port, clients,
                                 self.cfg["rate_secs"], user, PASS)[0]
                if int(r["errors"]):
                    log(f"  {server}: {r['errors']} failed sessions")
                    self.errors[(f"{label}{clients}", server)] = \
                        self.errors.get((f"{label}{clients}", server), 0) + \
                        int(r["errors"])
                self.add(f"{label}{clients}", server, float(r["rate"]),
                         float(r["cpu"]))
            log(f"  {server} {clients} clients: "
                f"{statistics.median(self.samples[(f'{label}{clients}', server)]):.0f}/s")

    def ops(self, server, start, stop, user):
        """login+STAT on 10,000 messages: the first session after a start
        (what the server kept on disk from an earlier session, nothing in
        memory), then sessions on whatever worker takes them after one
        session since the start, then LIST, UIDL and TOP in those."""
        self.loadgen_prime(start, stop, user)
        for _ in range(self.cfg["cold_reps"]):
            p, port = start()
            r = self.loadgen("ops", HOST, port, user, PASS, 10000, 1,
                             "login")[0]
            self.add("cold", server, float(r["login_stat_ms"]))
            stop(p)
        p, port = start()
        self.loadgen("ops", HOST, port, user, PASS, 10000, 1, "login")
        for r in self.loadgen("ops", HOST, port, user, PASS, 10000,
                              self.cfg["warm_reps"], "all"):
            self.add("warm", server, float(r["login_stat_ms"]))
            self.add("list", server, float(r["list_ms"]))
            self.add("uidl", server, float(r["uidl_ms"]))
            if server != "pop3d":  # pop3d's: in turns with the responder
                self.add("top", server, float(r["top_ms"]), float(r["cpu"]))
        if server == "pop3d":
            self.top_turns(port)
        stop(p)
        log(f"  {server}: first session {statistics.median(self.samples[('cold', server)]):.1f} ms, "
            f"any worker {statistics.median(self.samples[('warm', server)]):.1f} ms, "
            f"TOP {statistics.median(self.samples[('top', server)]):.0f} ms")

    def top_turns(self, port):
        """TOP n 0 for all 10,000, one by one: pop3d (after one session
        since its start, any worker) and the in-memory responder (bench/
        sender --top: every answer built at its start) take turns, one
        session each, so that both see the same load."""
        sport = free_port()
        sp = self.spawn([os.path.join(self.bin, "sender"), "--top",
                         str(sport), os.path.join(self.data, "m10k")],
                        "sender-top", sport)
        self.loadgen("ops", HOST, sport, "bench", PASS, 10000, 1, "login")
        for _ in range(self.cfg["warm_reps"]):
            for srv, prt in (("pop3d", port), ("ceiling", sport)):
                r = self.loadgen("ops", HOST, prt, "bench", PASS, 10000, 1,
                                 "top")[0]
                self.add("top", srv, float(r["top_ms"]),
                         float(r["cpu"]) if srv == "pop3d" else None)
        self.stop(sp)
        log(f"  in-memory responder: TOP "
            f"{statistics.median(self.samples[('top', 'ceiling')]):.0f} ms")

    def loadgen_prime(self, start, stop, user):
        """One session on a fresh start: what an earlier run leaves."""
        p, port = start()
        self.loadgen("ops", HOST, port, user, PASS, 10000, 1, "login")
        stop(p)

    def newmail(self, server, port, user, folder):
        """login+STAT after one new message arrived (by rename) since the
        last session, on whatever worker takes it."""
        self.loadgen("ops", HOST, port, user, PASS, self.newmail_n, 1,
                     "login")
        for i in range(self.cfg["warm_reps"]):
            tmp = os.path.join(self.data, f".newmail-{server}-{i}")
            with open(tmp, "wb") as f:
                f.write(b"Subject: new mail %d\n\nhello\n" % i)
            os.chmod(tmp, 0o644)
            os.rename(tmp, os.path.join(folder, f"new-{server}-{i}"))
            self.newmail_n += 1
            r = self.loadgen("ops", HOST, port, user, PASS, self.newmail_n,
                             1, "login")[0]
            self.add("newmail", server, float(r["login_stat_ms"]))
        log(f"  {server}: after new mail "
            f"{statistics.median(self.samples[('newmail', server)]):.1f} ms")

    def copy_m10k(self, src, dst, owner=None):
        """A hard-linked copy of a 10,000-message maildrop to add mail to;
        its folders (not the shared files) given to owner."""
        shutil.rmtree(dst, ignore_errors=True)
        subprocess.run(["cp", "-al", src, dst], check=True)
        if owner is not None:
            for d, _, _ in os.walk(dst):
                os.chown(d, owner.pw_uid, owner.pw_gid)
        self.newmail_n = 10000

    def retr(self, server, port, user, key="retr", path=None):
        rows = self.loadgen("retr", HOST, port, user, PASS,
                            path or self.bigfile, self.cfg["retr_reps"] + 1)
        for r in rows[1:]:  # the first is a warm-up
            self.add(key, server, float(r["gbps"]), float(r["cpu"]))
        log(f"  {server}: RETR {statistics.median(self.samples[(key, server)]):.2f} GB/s")

    def pss(self, server, start, stop, user):
        lg = os.path.join(self.bin, "loadgen")
        for _ in range(self.cfg["pss_reps"]):
            p, port = start()
            self.loadgen("ops", HOST, port, user, PASS, 10, 1, "login")
            time.sleep(0.5)
            base, nbase = pss_kb(p.pid)
            h = subprocess.Popen([lg, "hold", HOST, str(port), user, PASS,
                                  str(HOLD)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            line = h.stdout.readline()
            if not line.startswith("ready"):
                h.kill()
                raise RuntimeError(f"hold failed: {line!r}")
            time.sleep(0.5)
            held, nheld = pss_kb(p.pid)
            h.stdin.write("go\n")
            h.stdin.close()
            h.wait(timeout=60)
            stop(p)
            self.add("pss", server, (held - base) / HOLD)
            self.procs_note = getattr(self, "procs_note", {})
            self.procs_note[server] = (nbase, nheld)
        log(f"  {server}: PSS {statistics.median(self.samples[('pss', server)]):.0f} KB/session")

    # ---------------------------------------------------------- the run
    def run(self):
        t0 = time.time()
        self.load0 = os.getloadavg()[0]
        try:
            self.setup_dovecot()
        except Exception as e:
            self.dovecot, self.dovecot_why = None, f"setup failed: {e}"
        if self.dovecot is None:
            log(f"Dovecot rows skipped: {self.dovecot_why}")
        else:
            log(f"Dovecot: {self.dovecot}, private instance in {self.dtmp}")
        try:
            if self.a.only == "retr":
                self.retr_pop3d()
            elif self.a.only == "top":
                log("pop3d and the in-memory responder: TOP n 0, turn about")
                p, port = self.pop3d("m10k")
                self.loadgen("ops", HOST, port, "bench", PASS, 10000, 1,
                             "login")
                self.top_turns(port)
                self.stop(p)
            else:
                self.run_pop3d()
            if self.dovecot:
                try:
                    if self.a.only == "retr":
                        self.retr_dovecot()
                    elif self.a.only == "top":
                        pass
                    else:
                        self.run_dovecot()
                except Exception as e:  # report pop3d's rows regardless
                    log(f"Dovecot failed, its rows are incomplete: {e}")
                    self.dovecot_why = f"failed: {e}"
                    for p in self.procs:
                        self.stop(p)
        finally:
            for p in self.procs:
                self.stop(p)
            if self.dovecot and not self.a.keep:
                for t in self.dtmps:
                    shutil.rmtree(t, ignore_errors=True)
        self.elapsed = time.time() - t0
        self.report()

    def run_pop3d(self):
        log("pop3d: session rate (10-message maildrop)")
        p, port = self.pop3d("m10")
        self.rate("pop3d", port, "bench")
        self.stop(p)

        log("pop3d: stdio mode under systemd-socket-activate --accept --inetd")
        ssa = shutil.which("systemd-socket-activate")
        if ssa:
            port = free_port()
            p = self.spawn([ssa, "--accept", "--inetd", "-l",
                            f"{HOST}:{port}", os.path.abspath(self.a.pop3d),
                            "--index-dir", self.index,
                            os.path.join(self.data, "m10")],
                           "pop3d-stdio", port)
            for _ in range(self.cfg["rate_reps"]):
                r = self.loadgen("rate", HOST, port, 1,
                                 self.cfg["rate_secs"], "bench", PASS)[0]
                self.add("stdio1", "pop3d", float(r["rate"]), float(r["cpu"]))
            self.stop(p)
            log(f"  pop3d stdio: {statistics.median(self.samples[('stdio1', 'pop3d')]):.0f}/s")
            # the floor of the mode: a minimal C responder, same launcher
            port = free_port()
            p = self.spawn([ssa, "--accept", "--inetd", "-l",
                            f"{HOST}:{port}",
                            os.path.join(self.bin, "sender"), "-"],
                           "sender-stdio", port)
            for _ in range(self.cfg["rate_reps"]):
                r = self.loadgen("rate", HOST, port, 1,
                                 self.cfg["rate_secs"], "bench", PASS)[0]
                self.add("stdio1", "ceiling", float(r["rate"]))
            self.stop(p)
            log(f"  minimal C responder stdio: {statistics.median(self.samples[('stdio1', 'ceiling')]):.0f}/s")
        else:
            log("  systemd-socket-activate not found: row skipped")

        log("pop3d: 10,000 messages")
        self.ops("pop3d", lambda: self.pop3d("m10k"), self.stop, "bench")
        for _ in range(self.cfg["cold_reps"]):
            p, port = self.pop3d("m10k", index=False)
            r = self.loadgen("ops", HOST, port, "bench", PASS, 10000, 1,
                             "login")[0]
            self.add("noindex", "pop3d", float(r["login_stat_ms"]))
            self.stop(p)
        log(f"  pop3d without an index: {statistics.median(self.samples[('noindex', 'pop3d')]):.0f} ms")

        log("pop3d: 10,000 messages, one new message before each session")
        folder = os.path.join(self.data, "m10k-new")
        self.copy_m10k(os.path.join(self.data, "m10k"), folder)
        p, port = self.pop3d("m10k-new")
        self.newmail("pop3d", port, "bench", folder)
        self.stop(p)
        shutil.rmtree(folder, ignore_errors=True)

        if ssa:
            log("pop3d: 10,000 messages, stdio mode")
            port = free_port()
            p = self.spawn([ssa, "--accept", "--inetd", "-l",
                            f"{HOST}:{port}", os.path.abspath(self.a.pop3d),
                            "--index-dir", self.index,
                            os.path.join(self.data, "m10k")],
                           "pop3d-stdio-m10k", port)
            self.loadgen("ops", HOST, port, "bench", PASS, 10000, 1, "login")
            for r in self.loadgen("ops", HOST, port, "bench", PASS, 10000,
                                  self.cfg["warm_reps"], "login"):
                self.add("stdio10k", "pop3d", float(r["login_stat_ms"]))
            self.stop(p)
            log(f"  pop3d stdio: {statistics.median(self.samples[('stdio10k', 'pop3d')]):.1f} ms")

        self.retr_pop3d()

        log(f"pop3d: PSS with {HOLD} idle sessions")
        self.pss("pop3d", lambda: self.pop3d("m10"), self.stop, "bench")

    def retr_pop3d(self):
        for key, drop, path, what in (
                ("retr", "big", self.bigfile, "LF file, converted"),
                ("retrcrlf", "bigcrlf", self.crlffile,
                 "CRLF file, zero-copy")):
            log(f"pop3d and the in-memory sender: RETR 256 MiB, {what}, "
                "turn about")
            p, port = self.pop3d(drop)
            sport = free_port()
            sp = self.spawn([os.path.join(self.bin, "sender"), str(sport),
                             path], "sender-" + drop, sport)
            # One warm-up each, then one RETR of each in turn, so that
            # both see the same load on a shared machine: the ratio is
            # fair.
            self.loadgen("retr", HOST, port, "bench", PASS, path, 1)
            self.loadgen("retr", HOST, sport, "bench", PASS, path, 1)
            for _ in range(self.cfg["retr_reps"]):
                for srv, prt in (("pop3d", port), ("ceiling", sport)):
                    r = self.loadgen("retr", HOST, prt, "bench", PASS,
                                     path, 1)[0]
                    self.add(key, srv, float(r["gbps"]), float(r["cpu"]))
            self.stop(sp)
            self.stop(p)
            log(f"  pop3d {statistics.median(self.samples[(key, 'pop3d')]):.2f} GB/s, "
                f"sender {statistics.median(self.samples[(key, 'ceiling')]):.2f} GB/s")

    def retr_dovecot(self):
        p = self.dovecot_start()
        for user in ("big", "bigcrlf"):
            self.loadgen("ops", HOST, self.dport, user, PASS, 1, 1, "login")
        log("dovecot: RETR 256 MiB")
        self.retr("dovecot", self.dport, "big")
        log("dovecot: RETR 256 MiB, CRLF file")
        self.retr("dovecot", self.dport, "bigcrlf", "retrcrlf", self.crlffile)
        self.dovecot_stop(p)

    def run_dovecot(self):
        def start():
            return self.dovecot_start(), self.dport

        p = self.dovecot_start()
        # build Dovecot's indexes once: "cold" below is a restart with
        # the index on disk, as for any Dovecot that has seen the mailbox
        for user in ("m10", "m10k"):
            self.loadgen("ops", HOST, self.dport, user, PASS,
                         {"m10": 10, "m10k": 10000}[user], 1, "login")
        log("dovecot: session rate (10-message Maildir)")
        self.rate("dovecot", self.dport, "m10")
        self.dovecot_stop(p)
        self.retr_dovecot()
        log("dovecot: 10,000 messages")
        self.ops("dovecot", start, self.dovecot_stop, "m10k")

        log("dovecot: 10,000 messages, one new message before each session")
        folder = os.path.join(self.data, "maildir", "m10knew")
        self.copy_m10k(os.path.join(self.data, "maildir", "m10k"), folder,
                       pwd.getpwnam("mail"))
        p = self.dovecot_start()
        self.newmail("dovecot", self.dport, "m10knew",
                     os.path.join(folder, "new"))
        self.dovecot_stop(p)
        shutil.rmtree(folder, ignore_errors=True)

        # The stdio rows' references: Dovecot reusing processes (above:
        # the "any worker" sessions) and with its defaults, a login and a
        # mail process per connection, as pop3d's stdio mode has.
        self.samples[("stdio10k", "dovecot")] = list(
            self.samples[("warm", "dovecot")])
        log("dovecot (defaults: a process per connection): 10,000 messages")
        p = self.dovecot_start(default=True)
        self.loadgen("ops", HOST, self.dport_def, "m10k", PASS, 10000, 1,
                     "login")
        for r in self.loadgen("ops", HOST, self.dport_def, "m10k", PASS,
                              10000, self.cfg["warm_reps"], "login"):
            self.add("stdio10kdef", "dovecot", float(r["login_stat_ms"]))
        self.dovecot_stop(p)
        self.samples[("stdio10kdef", "pop3d")] = list(
            self.samples.get(("stdio10k", "pop3d"), []))
        log(f"dovecot: PSS with {HOLD} idle sessions")
        self.pss("dovecot", start, self.dovecot_stop, "m10")

    # ---------------------------------------------------------- output
    def update_readme(self, md):
        path = os.path.join(HERE, "README.md")
        with open(path) as f:
            text = update_readme_text(f.read(), md)
        if text is None:
            log("bench/README.md has no table markers: not updated")
            return
        with open(path, "w") as f:
            f.write(text)
        log(f"written: {path}")

    def report(self):
        rows = [
            # key, label, unit, higher_is_better, goal (factor vs Dovecot)
            ("rate1", "Sessions/s, 1 client", "sessions/s", True, 1.5),
            ("rate16", "Sessions/s, 16 clients", "sessions/s", True, None),
            ("rate64", "Sessions/s, 64 clients", "sessions/s", True, None),
            ("stdio1", "Sessions/s, 1 client, stdio mode under systemd-socket-activate --accept --inetd (ceiling: minimal C responder)", "sessions/s", True, None),
            ("stdio10k", "login+STAT, 10,000 msgs, stdio mode (systemd-socket-activate --accept --inetd), vs Dovecot reusing processes", "ms", False, 2.0),
            ("stdio10kdef", "the same, vs Dovecot's defaults (a process per connection)", "ms", False, None),
            ("cold", "login+STAT, 10,000 msgs, first session after start (index from an earlier session)", "ms", False, 1.0),
            ("noindex", "login+STAT, 10,000 msgs, first session, no index (pop3d reads every file)", "ms", False, None),
            ("warm", "login+STAT, 10,000 msgs, listener, a session on any worker", "ms", False, 2.0),
            ("newmail", "login+STAT, 10,000 msgs, listener, any worker, one new message since the last session", "ms", False, 2.0),
            ("list", "LIST, 10,000 msgs (any worker)", "ms", False, 1.0),
            ("uidl", "UIDL, 10,000 msgs (any worker)", "ms", False, 1.0),
            ("top", "TOP n 0 for all 10,000, one by one (any worker; ceiling: in-memory responder)", "ms", False, 2.0),
            ("retr", "RETR 256 MiB, verified", "GB/s", True, 3.5),
            ("retrcrlf", "RETR 256 MiB, CRLF file (zero-copy), verified", "GB/s", True, 3.5),
            ("pss", f"PSS per idle logged-in session ({HOLD} held)", "KB", False, None),
        ]

        def med(key, srv):
            v = self.samples.get((key, srv))
            return statistics.median(v) if v else None

        def fmt(x, unit):
            if x is None:
                return "-"
            if unit == "GB/s":
                return f"{x:.2f}"
            if unit == "ms":
                return f"{x:.1f}" if x < 100 else f"{x:.0f}"
            return f"{x:.0f}"

        def cell(key, srv, unit):
            v = self.samples.get((key, srv))
            if not v:
                return "-"
            s = f"{fmt(statistics.median(v), unit)}"
            if len(v) > 1:
                s += f" ({fmt(min(v), unit)}-{fmt(max(v), unit)})"
            return s

        hdr = ("| workload | unit | pop3d | Dovecot | ceiling | "
               "pop3d vs Dovecot | pop3d vs ceiling | goal | met | loadgen CPU |")
        lines = [hdr, "|" + "---|" * 10]
        self.verdicts = []
        for key, label, unit, hib, goal in rows:
            p, d = med(key, "pop3d"), med(key, "dovecot")
            c = med(key, "ceiling")
            vs = "-"
            adv = None
            if p is not None and d is not None and p > 0 and d > 0:
                adv = p / d if hib else d / p
                vs = f"{adv:.2f}x"
            vc = "-"
            if p is not None and c:
                # a time: pop3d's / the ceiling's; a rate: pop3d's share
                vc = f"{p / c:.2f}x" if unit == "ms" else f"{100 * p / c:.0f}%"
            goals, met = [], []
            if goal is not None:
                if hib:
                    goals.append(f">= {goal:g}x Dovecot")
                elif goal == 1.0:
                    goals.append("<= Dovecot")
                else:
                    goals.append(f"<= 1/{goal:g} Dovecot")
                if adv is not None:
                    met.append(adv >= goal)
            if key in ("retr", "retrcrlf"):
                goals.append(">= 80% ceiling")
                if p is not None and c:
                    met.append(p / c >= 0.8)
            if key == "top":
                goals.append("<= 1.1x ceiling")
                if p is not None and c:
                    met.append(p / c <= 1.1)
            if key == "pss":
                goals.append("<= 100 KB")
                if p is not None:
                    met.append(p <= 100)
            m = "-" if not met else ("yes" if all(met) else "**no**")
            if met:
                self.verdicts.append((label, all(met)))
            cpu = self.cpu.get((key, "pop3d"))
            cpu_s = f"{statistics.median(cpu):.0f}%" if cpu else "-"
            lines.append(f"| {label} | {unit} | {cell(key, 'pop3d', unit)} | "
                         f"{cell(key, 'dovecot', unit)} | "
                         f"{cell(key, 'ceiling', unit)} | {vs} | {vc} | "
                         f"{'; '.join(goals) or '-'} | {m} | {cpu_s} |")
        table = "\n".join(lines)

        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for ln in f:
                    if ln.startswith("model name"):
                        cpu = ln.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        try:
            deb = open("/etc/debian_version").read().strip()
        except OSError:
            deb = "?"
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always",
                              "--dirty"], capture_output=True,
                             text=True).stdout.strip() or "?"
        load = os.getloadavg()
        c = self.cfg
        machine = (f"{cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM; Debian {deb}, "
                   f"Linux {platform.release()}; pop3d {rev}; "
                   f"Dovecot {self.dovecot or 'not measured: ' + self.dovecot_why}; "
                   f"load average (1 min) at start {self.load0:.2f}, at the end {load[0]:.2f}")
        notes = (
            f"{'QUICK' if self.a.quick else 'full'} run, "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, "
            f"{self.elapsed:.0f} s. Medians with (min-max) over "
            f"{c['rate_reps']} runs of {c['rate_secs']:g} s (session rates), "
            f"{c['cold_reps']} restarts (first session), {c['warm_reps']} "
            f"sessions after one session since the start (other rows; no "
            f"worker pre-warmed), "
            f"{c['retr_reps']} RETRs after one warm-up, {c['pss_reps']} "
            f"PSS measurement(s).\n"
            "\"pop3d vs Dovecot\" is pop3d's advantage (Dovecot's time or "
            "memory / pop3d's, or pop3d's rate / Dovecot's): above 1 pop3d "
            "leads. \"ceiling\" is bench/sender (the same RETR bytes, or "
            "TOP answers, from memory over loopback); \"pop3d vs ceiling\" "
            "is pop3d's share of its rate, or pop3d's time / its time. "
            "\"loadgen CPU\" is the load generator's "
            "own CPU (% of one core) during pop3d's runs.")
        if self.errors:
            notes += "\nFailed sessions (not counted): " + ", ".join(
                f"{k[1]} {k[0]}: {v}" for k, v in self.errors.items()) + "."
        self.table = table
        md = f"{table}\n\n{notes}\n\nMachine: {machine}\n"
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(md)
        if not self.a.quick and not self.a.only:
            self.update_readme(md)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump({"config": c, "quick": self.a.quick,
                       "machine": machine,
                       "processes_base_held": getattr(self, "procs_note", {}),
                       "samples": {f"{k[0]}/{k[1]}": v
                                   for k, v in self.samples.items()},
                       "loadgen_cpu": {f"{k[0]}/{k[1]}": v
                                       for k, v in self.cpu.items()}},
                      f, indent=1)
        print()
        print(md)
        if self.verdicts:
            missed = [l for l, ok in self.verdicts if not ok]
            print(f"goals met: {len(self.verdicts) - len(missed)} of "
                  f"{len(self.verdicts)}" +
                  (f"; behind on: {', '.join(missed)}" if missed else ""))
        print(f"written: {os.path.join(self.out, 'results.md')}")


def update_readme_text(text, md):
    """text with the part between the README markers replaced by md."""
    a, b = text.find(README_BEGIN), text.find(README_END)
    if a < 0 or b < a:
        return None
    return text[:a + len(README_BEGIN)] + "\n\n" + md + "\n" + text[b:]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="fewer and shorter runs (about a minute)")
    ap.add_argument("--pop3d", default=os.path.join(ROOT, "pop3d"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--only", choices=("retr", "top"),
                    help="run only these rows (retr: the RETR rows; top: "
                    "pop3d's TOP row and its ceiling); the README's table "
                    "is left alone")
    ap.add_argument("--keep", action="store_true",
                    help="keep Dovecot's temp dir")
    a = ap.parse_args()
    if os.geteuid() != 0:
        log("not root: Dovecot's private instance needs root; "
            "it will probably fail and be skipped")
    Bench(a).run()


if __name__ == "__main__":
    main()
