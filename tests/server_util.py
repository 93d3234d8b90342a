"""Helpers for the pop3d end-to-end tests (tests/test_server*.py).

conftest.py (the lead's) provides POP3D, free_port(), Server, Conn and the
server/maildrop/empty_maildrop fixtures.  This module adds what the server
tests need on top: the expected form of TOP, the expected
numbering of a maildrop, and a reader for the dialogue data files in
tests/data/server/.
"""
import ast
import os
import re
import socket
import stat
import time

import pytest

from conftest import (POP3D, TIMEOUT, Conn, ServerClosed,  # noqa: F401
                      free_port, wire)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "server")


# The one connection class of the tests, under the name these tests use.
Pop = Conn


def wire_top(data, k):
    """The text TOP n k sends: header, empty line, k body lines."""
    lines = wire(data).split(b"\r\n")[:-1]
    out = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        i += 1
        if out[-1] == b"":
            break
    out.extend(lines[i:i + k])
    return b"".join(l + b"\r\n" for l in out)


def messages(path):
    """Names of the messages pop3d should serve, in readdir order."""
    names = []
    for name in os.listdir(path):
        st = os.lstat(os.path.join(path, name))
        if stat.S_ISREG(st.st_mode):
            names.append(name)
    return names


def messages_arrival(path):
    names = messages(path)
    return sorted(names, key=lambda n: (
        os.lstat(os.path.join(path, n)).st_mtime_ns, n.encode()))


def read(path, name=None):
    with open(os.path.join(path, name) if name else path, "rb") as f:
        return f.read()


@pytest.fixture
def pop3d(server):
    """The conftest `server` factory under the name these tests use."""
    return server


def wait_for(pred, timeout=TIMEOUT, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# --- dialogue data files ----------------------------------------------------
#
# One directive a line; '#' starts a comment line, blank lines are ignored.
#   C: text     send text + CRLF (Python escapes allowed: \x00, \t, \n ...)
#   R: text     send text as is, no terminator added (escapes allowed)
#   S: text     expect exactly this status line
#   S~ regex    expect a status line matching regex (fullmatch)
#   B~ regex    expect a multi-line body (after the status) whose lines all
#               match regex; the '.' terminator is consumed
#   X:          expect the server to close the connection
# {N} in C/R/S lines is replaced by the number of messages, {N1} by N + 1,
# {SIZE1} by the LIST size of message 1.

def load_dialogue(name):
    steps = []
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            raw = raw.rstrip("\n")
            if not raw.strip() or raw.startswith("#"):
                continue
            kind, text = raw[:2], raw[3:]
            if kind in ("C:", "R:"):
                text = ast.literal_eval('"' + text.replace('"', '\\"') + '"')
            steps.append((lineno, kind, text))
    return steps


def run_dialogue(conn, steps, subst):
    for lineno, kind, text in steps:
        for k, v in subst.items():
            text = text.replace("{%s}" % k, str(v))
        where = "line %d: %s %s" % (lineno, kind, text[:60])
        if kind == "C:":
            conn.send(text.encode("latin-1") + b"\r\n")
        elif kind == "R:":
            conn.send(text.encode("latin-1"))
        elif kind == "S:":
            got = conn.line()
            assert got == text.encode(), (where, got)
        elif kind == "S~":
            got = conn.line()
            assert re.fullmatch(text.encode(), got), (where, got)
        elif kind == "B~":
            for line in conn.body():
                assert re.fullmatch(text.encode(), line), (where, line)
        elif kind == "X:":
            assert conn.wait_closed(), where
        else:
            raise ValueError("bad directive " + where)
