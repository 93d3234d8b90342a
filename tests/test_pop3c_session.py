"""pop3c's sense of the session, in a terminal (tmux): a server that closes
the connection while pop3c waits at the prompt is reported at once with
the DELE marks lost, 'reconnect' starts over, QUIT and Ctrl-D with pending
deletions ask first, the prompt shows user, TLS and marks; the local
commands help CMD and tls; completion of STLS and AUTH.
"""
import re
import subprocess


from conftest import TIMEOUT
from pop3c_util import (CLOSE, Pause, ScriptedServer, client_env, run_pop3c,
                        script)


def test_tmux_server_close_at_prompt_reported(tmp_path, term):
    srv = ScriptedServer(script({
        b"DELE 1": [b"+OK marked\r\n"],
        b"DELE 2": [b"+OK marked\r\n", Pause(0.5), CLOSE],
    }))
    t = term([srv.port], client_env(tmp_path))
    t.wait(r">$")
    t.text("DELE 1")
    t.keys("Enter")
    t.wait(r"^localhost:%d \*1>$" % srv.port)
    t.text("DELE 2")
    t.keys("Enter")
    t.wait(r"^\+OK marked$")
    t.text("NOO")			# typing, not sent
    # Reported with no further key pressed, the typed text kept.
    t.wait(r"pop3c: the server closed the connection\n"
           r"pop3c: the session is over: 2 messages marked with DELE "
           r"were not deleted\n", timeout=TIMEOUT)
    t.wait(r"^localhost:%d \(closed\)> NOO$" % srv.port)
    srv.join()
    t.keys("C-u")
    t.text("STAT")
    t.keys("Enter")
    t.wait(r"not connected: 'reconnect' opens a new session")
    t.keys("C-d")
    t.wait(r"^EXIT=1$")


def test_tmux_reconnect_logs_in_again(tmp_path, server, maildrop, term):
    srv = server(maildrop, "-t", "2")
    t = term(["-u", "dana", srv.port], client_env(tmp_path))
    t.wait(r"^Password: ?$")
    t.text("x")
    t.keys("Enter")
    t.wait(r"^dana@localhost:%d>$" % srv.port)
    # pop3d's idle timeout ends the session while pop3c waits.
    t.wait(r"the server closed the connection", timeout=TIMEOUT)
    t.wait(r"^localhost:%d \(closed\)>$" % srv.port)
    t.text("reconnect")
    t.keys("Enter")
    t.wait(r"(?s)reconnect\n\+OK.*Password: ?$")
    t.text("x")
    t.keys("Enter")
    t.wait(r"^dana@localhost:%d>$" % srv.port)
    t.text("STAT")
    t.keys("Enter")
    t.wait(r"^\+OK 7 16049$")
    t.text("QUIT")
    t.keys("Enter")
    t.wait(r"^EXIT=0$")


def messages(maildrop):
    return sorted(p.name for p in maildrop.iterdir())


def test_tmux_quit_guard(tmp_path, server, maildrop, term):
    before = messages(maildrop)
    srv = server(maildrop)
    t = term([srv.port], client_env(tmp_path))
    t.wait(r">$")
    for n in (1, 2):
        t.text("DELE %d" % n)
        t.keys("Enter")
    t.wait(r"^localhost:%d \*2>$" % srv.port)
    t.text("QUIT")
    t.keys("Enter")
    t.wait(r"^apply 2 deletions\? \[y/N\]$")
    t.keys("Enter")			# no: RSET, then QUIT
    t.wait(r"^EXIT=0$")
    assert messages(maildrop) == before
    # Ctrl-D asks too; Ctrl-D at the question goes back to the prompt,
    # and y applies them.
    t2 = term([srv.port], client_env(tmp_path))
    t2.wait(r">$")
    t2.text("DELE 1")
    t2.keys("Enter")
    t2.wait(r"\*1>$")
    t2.keys("C-d")
    t2.wait(r"^apply 1 deletion\? \[y/N\]$")
    t2.keys("C-d")
    t2.wait(r"^localhost:%d \*1>$" % srv.port)
    t2.keys("C-d")
    t2.wait(r"apply 1 deletion\? \[y/N\]$")
    t2.text("y")
    t2.keys("Enter")
    t2.wait(r"^EXIT=0$")
    assert len(messages(maildrop)) == len(before) - 1


def test_tls_command_and_prompt(tmp_path, server, maildrop, certs, term):
    srv = server(maildrop, "--tls", "-c", certs["cert"], "-k", certs["key"])
    status, out, err = run_pop3c(["--cafile", certs["ca"], "--tls",
                                  "127.0.0.1", srv.port], b"tls\nNOOP\n",
                                 env=client_env(tmp_path))
    assert status == 0, err
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                         "-sha256", "-in", certs["cert"]], check=True,
                        capture_output=True, text=True).stdout
    fp = fp.strip().split("=", 1)[1].encode()
    assert re.search(rb"^protocol: TLSv1\.[23]$", out, re.M), out
    assert re.search(rb"^cipher:   \S+$", out, re.M)
    assert re.search(rb"^subject:  CN = localhost$", out, re.M), out
    assert re.search(rb"^issuer:   CN = pop3d test CA$", out, re.M), out
    assert re.search(rb"^valid:    .+ GMT to .+ GMT$", out, re.M), out
    assert b"sha256:   " + fp + b"\n" in out
    t = term(["--cafile", certs["ca"], "pop3s://127.0.0.1:%d" % srv.port],
             client_env(tmp_path))
    t.wait(r"^127\.0\.0\.1:%d \(tls\)>$" % srv.port)
    t.keys("C-d")
    t.wait(r"^EXIT=0$")


def test_tls_command_without_tls(tmp_path):
    srv = ScriptedServer(script({b"NOOP": [b"+OK\r\n"]}))
    status, out, err = run_pop3c([srv.port], b"tls\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0
    assert b"TLS is not on" in err
    assert srv.received == [b"NOOP", b"QUIT"]


def test_help_for_one_command(tmp_path):
    srv = ScriptedServer(script({}))
    status, out, err = run_pop3c([srv.port], b"help RETR\n? top\nhelp x\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert out == (b"+OK scripted\nRETR n\n  show message n and save it in "
                   b"the download folder\nTOP n k\n  show the header and "
                   b"the first k body lines of message n\n+OK bye\n")
    assert b"no command x" in err
    assert srv.received == [b"QUIT"]


def test_exit_is_local_and_quits(tmp_path):
    srv = ScriptedServer(script({}))
    status, out, err = run_pop3c([srv.port], b"exit\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"QUIT"]


def test_tmux_completes_stls_and_auth(tmp_path, term):
    srv = ScriptedServer(script({}))
    t = term([srv.port], client_env(tmp_path))
    t.wait(r">$")
    t.text("STL")
    t.keys("Tab")
    t.wait(r"> STLS$")
    t.keys("C-u")
    t.text("au")
    t.keys("Tab")
    t.wait(r"> auth$")
    t.keys("C-u")
    t.text("rec")
    t.keys("Tab")
    t.wait(r"> reconnect$")
    t.keys("C-u", "C-d")
    t.wait(r"^EXIT=0$")
    srv.join()
