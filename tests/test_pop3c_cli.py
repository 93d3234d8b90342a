"""pop3c in scripts and on the command line: -e/--errexit and the exit
statuses, notes on stderr, input after QUIT, one-line usage errors, every
form of the server's address, and the hints on TLS failures.
"""
import socket
import subprocess

import pytest

from conftest import free_port
from pop3c_util import (CLOSE, ScriptedServer, client_env, run_pop3c,
                        script)


def test_errexit_stops_at_err_after_quit(tmp_path):
    table = {b"STAT": [b"+OK 1 10\r\n"], b"RETR 9": [b"-ERR no such message\r\n"],
             b"NOOP": [b"+OK\r\n"]}
    srv = ScriptedServer(script(table))
    status, out, err = run_pop3c(["-e", srv.port], b"STAT\nRETR 9\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 2, err
    # UIDL 9 asks for the file name: not an error of the user's.
    assert srv.received == [b"STAT", b"UIDL 9", b"RETR 9", b"QUIT"]
    assert b"stopped at the first error" in err
    # Without -e the script goes on and ends with 0.
    srv = ScriptedServer(script(table))
    status, out, err = run_pop3c([srv.port],
                                 b"STAT\nRETR 9\nNOOP\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"STAT", b"UIDL 9", b"RETR 9", b"NOOP",
                            b"QUIT"]


def test_errexit_failed_login(tmp_path):
    srv = ScriptedServer(script({b"USER dana": [b"+OK\r\n"],
                                 b"PASS wrong": [b"-ERR [AUTH] no\r\n"]}))
    status, out, err = run_pop3c(["--errexit", "-u", "dana", srv.port],
                                 b"wrong\nSTAT\n", env=client_env(tmp_path))
    srv.join()
    assert status == 2, err
    assert srv.received == [b"USER dana", b"PASS wrong", b"QUIT"]


def test_errexit_protocol_error(tmp_path):
    srv = ScriptedServer(script({b"NOOP": [b"+ \r\n"],
                                 b"STAT": [b"+OK 0 0\r\n"]}))
    status, out, err = run_pop3c(["-e", srv.port], b"NOOP\nSTAT\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 2, err
    assert srv.received == [b"NOOP", b"QUIT"]
    srv = ScriptedServer(script({b"NOOP": [b"HELLO\r\n"]}))
    status, out, err = run_pop3c(["-e", srv.port], b"NOOP\nSTAT\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 2, err
    assert b"does not begin with +OK or -ERR" in err


def test_saved_note_goes_to_stderr(tmp_path):
    srv = ScriptedServer(script({b"RETR 1": [b"+OK\r\nhi\r\n.\r\n"]}))
    status, out, err = run_pop3c(["-d", tmp_path, srv.port], b"RETR 1\n",
                                 env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert out == b"+OK scripted\n+OK\nhi\n+OK bye\n"
    assert b"saved to %s/1.eml (4 octets)\n" % str(tmp_path).encode() in err


def test_input_after_quit(tmp_path):
    for opts, want in (([], 0), (["-e"], 2)):
        srv = ScriptedServer(script({}))
        status, out, err = run_pop3c([*opts, srv.port], b"QUIT\n\nSTAT\n",
                                     env=client_env(tmp_path))
        srv.join()
        assert status == want, err
        assert srv.received == [b"QUIT"]
        assert b"input after QUIT: not sent" in err


@pytest.mark.parametrize("args", [
    ["1", "2", "3"], ["0"], ["65536"], ["110 "], ["host:0"],
    ["host:x"], ["[::1"], ["[::1]x"], ["pop3://h/path"], ["pop3://@h"],
    ["pop3://dana%4@h"], ["pop3://dana%g0@h"], ["pop3://dana%@h"],
    ["pop3://dana%0d%0aDELE%201@h"], ["pop3://%00@h"],
    ["--tls", "--starttls", "h"], ["--starttls", "pop3s://h"],
    ["--max-size", "0", "h"], ["--max-size", "1T", "h"],
])
def test_one_line_usage_errors(tmp_path, args):
    status, out, err = run_pop3c(args, env=client_env(tmp_path))
    assert status == 64, err
    assert out == b""
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(b"pop3c: ")
    assert lines[1].startswith(b"usage: pop3c ") and b"--help" in lines[1]


def has_v6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("form,family", [
    ("{port}", 4), ("127.0.0.1 {port}", 4), ("127.0.0.1:{port}", 4),
    ("localhost:{port}", 4), ("[127.0.0.1]:{port}", 4),
    ("[::1]:{port}", 6), ("[::1] {port}", 6), ("::1 {port}", 6),
    ("pop3://127.0.0.1:{port}", 4), ("POP3://127.0.0.1:{port}/", 4),
    ("pop3://[::1]:{port}", 6),
])
def test_address_forms(tmp_path, form, family):
    if family == 6 and not has_v6_loopback():
        pytest.skip("no IPv6 loopback")
    srv = ScriptedServer(script({b"NOOP": [b"+OK here\r\n"]}),
                         **({"family": socket.AF_INET6, "host": "::1"}
                            if family == 6 else {}))
    args = form.format(port=srv.port).split()
    status, out, err = run_pop3c(args, b"NOOP\n", env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert out == b"+OK scripted\n+OK here\n+OK bye\n"


def test_url_user_logs_in(tmp_path):
    srv = ScriptedServer(script({b"USER dana": [b"+OK\r\n"],
                                 b"PASS s3cret": [b"+OK in\r\n"]}))
    status, out, err = run_pop3c(["pop3://dana@127.0.0.1:%d" % srv.port],
                                 b"s3cret\n", env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"USER dana", b"PASS s3cret", b"QUIT"]


def test_url_user_is_percent_decoded(tmp_path):
    """SPEC pop3c addresses: the URL's user part is percent-decoded."""
    srv = ScriptedServer(script({b"USER dana@corp": [b"+OK\r\n"],
                                 b"PASS s3cret": [b"+OK in\r\n"]}))
    status, out, err = run_pop3c(
        ["pop3://dana%%40corp@127.0.0.1:%d" % srv.port], b"s3cret\n",
        env=client_env(tmp_path))
    srv.join()
    assert status == 0, err
    assert srv.received == [b"USER dana@corp", b"PASS s3cret", b"QUIT"]


def port_in_use(port):
    r = subprocess.run(["ss", "-Hltn", "sport = :%d" % port],
                       capture_output=True, text=True)
    return r.returncode != 0 or r.stdout.strip() != ""


@pytest.mark.parametrize("args,port", [
    (["127.0.0.1"], 110), (["--tls", "127.0.0.1"], 995),
    (["pop3s://127.0.0.1"], 995), (["pop3://127.0.0.1"], 110),
    (["[::1]"], 110),
])
def test_default_ports(tmp_path, args, port):
    if port_in_use(port):
        pytest.skip("something listens on port %d here" % port)
    status, out, err = run_pop3c(args, env=client_env(tmp_path))
    assert status == 1
    assert b" port %d: Connection refused" % port in err, err


def test_tls_hints(tmp_path, server, maildrop, certs):
    plain = server(maildrop)
    status, out, err = run_pop3c(["--tls", "127.0.0.1", plain.port],
                                 env=client_env(tmp_path))
    assert status == 1
    assert b"did not answer in TLS" in err and b"--starttls" in err, err
    tls = server(maildrop, "--tls", "-c", certs["cert"], "-k", certs["key"])
    status, out, err = run_pop3c(["--tls", "127.0.0.1", tls.port],
                                 env=client_env(tmp_path))
    assert status == 1
    assert b"certificate verify failed" in err
    assert b"--cafile" in err and b"--insecure" in err, err
    status, out, err = run_pop3c(["--cafile", certs["ca"],
                                  "pop3s://127.0.0.1:%d" % tls.port],
                                 b"NOOP\n", env=client_env(tmp_path))
    assert status == 0, err
    assert out.startswith(b"+OK")
