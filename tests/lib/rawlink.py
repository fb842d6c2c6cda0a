"""Raw frames in and out of a namespace guest's interface (AF_PACKET), for hand-built hostile
traffic: send() writes frames exactly as given, Sniffer collects what arrives. Runs the socket
side inside the namespace with Debian's python3 (stdlib only)."""

import json
import subprocess

PY = "/usr/bin/python3"

SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for line in sys.stdin:
    line = line.strip()
    if line:
        s.send(bytes.fromhex(line))
"""

SNIFF = r"""
import json, select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
print("ready", flush=True)
frames = []
stop = False
while not stop:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.05)
    if sys.stdin in r:
        sys.stdin.readline()
        stop = True
    while True:
        try:
            data, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if addr[2] != socket.PACKET_OUTGOING:
            frames.append(data.hex())
print(json.dumps(frames), flush=True)
"""


def send(ns, frames):
    """Sends each frame (bytes) from the namespace's guest interface."""
    data = "".join(bytes(f).hex() + "\n" for f in frames)
    ns.run(PY, "-c", SEND, ns.dev, input=data, timeout=60)


class Sniffer:
    """Captures what arrives at a namespace's guest interface until stop()."""

    def __init__(self, ns):
        self.proc = ns.popen(PY, "-c", SNIFF, ns.dev, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self):
        """Returns the frames (bytes) received."""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        frames = json.loads(self.proc.stdout.readline())
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()
        return [bytes.fromhex(f) for f in frames]
