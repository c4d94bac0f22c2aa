#!/usr/bin/env python3
"""A tiny authoritative DNS server for the `only_configured_hosts` test: answers A queries for
the names given on the command line, NXDOMAIN for every other name, no records for other types,
and writes every query it receives ("NAME TYPE" per line, flushed) to a log file.

    dns_server.py LISTEN_ADDR LOG_FILE NAME=IPV4 [NAME=IPV4 ...]

UDP and TCP on port 53 of LISTEN_ADDR (glibc retries over TCP after a truncated answer).
Standard library only: the test must not depend on a DNS package.
"""
import socket
import socketserver
import struct
import sys
import threading

LISTEN, LOG = sys.argv[1], sys.argv[2]
RECORDS = {k.lower().rstrip("."): v for k, v in (a.split("=", 1) for a in sys.argv[3:])}
TYPES = {1: "A", 28: "AAAA", 5: "CNAME", 33: "SRV", 12: "PTR", 16: "TXT", 65: "HTTPS", 64: "SVCB"}
log = open(LOG, "a", buffering=1)
lock = threading.Lock()


def answer(query: bytes) -> bytes:
    (ident, flags, qdcount) = struct.unpack("!HHH", query[:6])
    pos, labels = 12, []
    while query[pos] != 0:
        n = query[pos]
        labels.append(query[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    qtype, _qclass = struct.unpack("!HH", query[pos + 1 : pos + 5])
    question = query[12 : pos + 5]
    name = ".".join(labels).lower()
    with lock:
        log.write(f"{name} {TYPES.get(qtype, qtype)}\n")
    rd = flags & 0x0100
    if name in RECORDS:
        if qtype == 1:
            rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(RECORDS[name])
            return struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, 1, 0, 0) + question + rr
        return struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, 0, 0, 0) + question
    return struct.pack("!HHHHHH", ident, 0x8403 | rd, 1, 0, 0, 0) + question


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(answer(data), self.client_address)


class Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            (n,) = struct.unpack("!H", head)
            reply = answer(self.rfile.read(n))
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


socketserver.ThreadingUDPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.allow_reuse_address = True
udp = socketserver.ThreadingUDPServer((LISTEN, 53), Udp)
tcp = socketserver.ThreadingTCPServer((LISTEN, 53), Tcp)
threading.Thread(target=tcp.serve_forever, daemon=True).start()
print("dns ready", flush=True)
udp.serve_forever()
