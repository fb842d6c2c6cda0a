"""A hostile network in a guest's path, where the kernel has no netem: a relay on two raw
AF_PACKET sockets that forwards frames between a guest's veth and the link the switch side
(testpmd) reads, losing, reordering and duplicating them with a seeded random generator.

Reordering holds a frame back until the next one in the same direction has gone (or 2 ms have
passed); duplication sends a frame twice. Each direction is impaired independently."""

import json
import subprocess

# The hostile network of the tests and benchmarks, and the strict rules a TCP client (a) and
# server (b, port 5001) meet in it.
HOSTILE = dict(loss=0.01, reorder=0.05, dup=0.01)
STRICT_RULES = {
    "a": "ruleset client {\n  rule 1 at 1 out protocol tcp strict from any to any port 5001 accept;\n"
         "  rule 2 at 2 inout protocol any from any to any drop;\n}\n",
    "b": "ruleset server {\n  rule 3 at 1 in protocol tcp strict from any to any port 5001 accept;\n"
         "  rule 4 at 2 inout protocol any from any to any drop;\n}\n",
}

RELAY = r"""
import json, random, select, socket, sys, time
a_dev, b_dev = sys.argv[1], sys.argv[2]
loss, reorder, dup = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rng = random.Random(int(sys.argv[6]))
socks = []
for dev in (a_dev, b_dev):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((dev, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 23)
    s.setblocking(False)
    socks.append(s)
stats = {"forwarded": 0, "lost": 0, "reordered": 0, "duplicated": 0}
held = [None, None]  # per direction: (frame, since)

def out(direction, frame):
    try:
        socks[1 - direction].send(frame)
    except BlockingIOError:
        time.sleep(0.0005)
        socks[1 - direction].send(frame)
    stats["forwarded"] += 1

print("ready", flush=True)
while True:
    r, _, _ = select.select(socks + [sys.stdin], [], [], 0.002)
    if sys.stdin in r:
        break
    now = time.monotonic()
    for d in (0, 1):
        if held[d] and now - held[d][1] > 0.002:
            out(d, held[d][0])
            held[d] = None
    for d, s in enumerate(socks):
        if s not in r:
            continue
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            x = rng.random()
            if x < loss:
                stats["lost"] += 1
                continue
            if x < loss + dup:
                out(d, frame)
                stats["duplicated"] += 1
            if held[d] is None and rng.random() < reorder:
                held[d] = (frame, now)
                stats["reordered"] += 1
                continue
            out(d, frame)
            if held[d]:
                out(d, held[d][0])
                held[d] = None
print(json.dumps(stats), flush=True)
"""


class Relay:
    """Forwards between links a and b (both in the root namespace) until stop()."""

    def __init__(self, a, b, loss=0.01, reorder=0.05, dup=0.01, seed=1):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", RELAY, a, b, str(loss), str(reorder),
                                      str(dup), str(seed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self):
        """Returns what the relay did: frames forwarded, lost, reordered, duplicated."""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        stats = json.loads(self.proc.stdout.readline())
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()
        return stats
