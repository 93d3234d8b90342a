"""Helpers for the PROXY protocol tests (tests/test_proxy*.py).

Builders for v1 and v2 headers as HAProxy's proxy-protocol.txt defines
them, a pop3d listener started with --proxy-from and waited for through its
log (a probe connection from a listed source would have to send a header),
connections from a chosen loopback source address, and reading until the
server closes.
"""
import ipaddress
import os
import socket
import struct
import time

from conftest import TIMEOUT, Conn, ServerClosed  # noqa: F401

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

# Loopback addresses the tests connect from: the proxy's, and a client's
# that is not listed in --proxy-from.
PROXY_ADDR = "127.0.0.1"
OTHER_ADDR = "127.0.0.7"


def v1(src="192.0.2.7", dst="198.51.100.1", sport=4711, dport=110,
       proto=None):
    if proto is None:
        proto = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport,
                                           dport)).encode()


def tlv(kind, value):
    return struct.pack("!BH", kind, len(value)) + value


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def v2(src="192.0.2.7", dst="198.51.100.1", sport=4711, dport=110,
       command=1, tlvs=b"", ssl=None, crc=False, bad_crc=False):
    """A v2 header; ssl: None, or the client bits of an SSL TLV."""
    a = ipaddress.ip_address(src)
    b = ipaddress.ip_address(dst)
    fam = 0x11 if a.version == 4 else 0x21
    body = a.packed + b.packed + struct.pack("!HH", sport, dport)
    if ssl is not None:
        tlvs += tlv(0x20, struct.pack("!BI", ssl, 0) +
                    tlv(0x21, b"TLSv1.3"))
    if crc:
        tlvs += tlv(0x03, b"\0\0\0\0")
    body += tlvs
    hdr = V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H",
                                                             len(body))
    hdr += body
    if crc:
        c = crc32c(hdr) ^ (1 if bad_crc else 0)
        hdr = hdr[:-4] + struct.pack("!I", c)
    return hdr


def v2_local():
    return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)


def wait_log(server, fragment, timeout=TIMEOUT):
    """Wait until the server's log holds fragment; return the log."""
    if isinstance(fragment, str):
        fragment = fragment.encode()
    deadline = time.monotonic() + timeout
    while True:
        out = server.output()
        if fragment in out:
            return out
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("%r not in the log: %r" % (fragment,
                                                          out[-2000:]))
        time.sleep(0.02)


def start(server, maildrop, *opts):
    """pop3d with these options, waited for through its log."""
    s = server(maildrop, *opts, wait=False)
    wait_log(s, "listening")
    return s


def connect(port, source=PROXY_ADDR, timeout=TIMEOUT):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))


def proxied(port, header, source=PROXY_ADDR, rest=b""):
    """A Conn that sent header (and rest) first, greeting read."""
    sock = connect(port, source)
    sock.sendall(header + rest)
    return Conn(sock=sock)


def read_to_close(sock, timeout=TIMEOUT):
    """Everything the server sends until it closes (b"" if nothing)."""
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


def snapshot(folder):
    return sorted(os.listdir(folder))
