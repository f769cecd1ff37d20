"""Asks one DNS server for a name's A record over UDP; exits 0 only if the expected address comes back.

Used by cluster-up.sh to prove cluster DNS answers (the host reaches the DNS Service's ClusterIP
through kube-proxy's rules). Standard library only, no dig needed.
"""

from __future__ import annotations

import socket
import struct
import sys


def query(server: str, name: str, timeout: float = 2.0) -> list[str]:
    """A records for `name` from `server`:53."""
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", 0x4D41, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, 53))
        reply, _ = sock.recvfrom(4096)
    answers = struct.unpack(">H", reply[6:8])[0]
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(answers):
        offset += 2 if reply[offset] & 0xC0 == 0xC0 else len(question)
        rtype, _class, _ttl, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return addresses


if __name__ == "__main__":
    server, name, expected = sys.argv[1:4]
    found = query(server, name)
    print(f"{name} -> {found}")
    sys.exit(0 if expected in found else 1)
