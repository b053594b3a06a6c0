#!/usr/bin/env python3
"""
The long flood runs of docs/reliability.md "Rates, connections per address
and slow peers": the shipped configuration (ports and paths moved as in
tests/shipped/support.py, its default deadlines untouched) in its own
process, over loopback.

    python tools/flood_broker.py                    # 5 waves of 5,000 half-open, 300 slowloris
    python tools/flood_broker.py --waves 2 --half-open 2000 --slow 100

1. Waves of half-open TCP connections that send nothing: the broker's RSS
   and open descriptors while they are open and after the CONNECT deadline
   closed them, and how long that took.
2. Slowloris on every listener of the file: ``--slow`` peers each on MQTT
   TCP (a CONNECT), WebSocket (the upgrade request) and the REST API (the
   request headers), one byte per second; when each was closed, and the
   round-trip of a fresh client meanwhile.
3. The rate limit: a second broker with ``rate_limit.conn_messages_in =
   "2000,1s"``; one publisher writes QoS 0 as fast as it can for
   ``--rate-seconds``, a subscriber counts what arrives.

The summary (JSON) goes to bench/results/flood-<date>.json.  Bounded: every
phase ends by itself and the brokers are stopped.
"""

import argparse
import datetime
import json
import os
import selectors
import socket
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psutil  # noqa: E402
from fuzz_broker import start_broker  # noqa: E402

from tests import packets as P  # noqa: E402

MIB = 1024 * 1024


def usage(process):
    return {"rss_mib": round(process.memory_info().rss / MIB, 1),
            "fds": process.num_fds()}


def open_many(port, count):
    """``count`` non-blocking sockets connected to ``port`` (sending nothing)."""
    socks = []
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
        selector.register(sock, selectors.EVENT_WRITE)
    pending = len(socks)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            selector.unregister(key.fileobj)
            pending -= 1
    selector.close()
    return socks


def wait_closed(socks, timeout):
    """Seconds until the broker closed every socket (EOF or reset)."""
    start = time.monotonic()
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    left = len(socks)
    while left and time.monotonic() - start < timeout:
        for key, _ in selector.select(timeout=1):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                left -= 1
    selector.close()
    return time.monotonic() - start, left


def roundtrip(port, attempts=5):
    """Seconds for CONNECT/CONNACK plus PINGREQ/PINGRESP on a fresh socket
    (retried: under a SYN flood the kernel may refuse a connect)."""
    for attempt in range(attempts):
        try:
            return _roundtrip(port)
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    return None


def _roundtrip(port):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(P.connect("flood-probe") + P.PINGREQ)
        got = b""
        while len(got) < 6:
            chunk = sock.recv(64)
            if not chunk:
                break
            got += chunk
        sock.sendall(P.disconnect())
    assert got[:4] == b"\x20\x02\x00\x00", got
    return time.monotonic() - start


def half_open_waves(process, ports, waves, count):
    base = usage(process)
    results = []
    for wave in range(waves):
        socks = open_many(ports["tcp"], count)
        time.sleep(1.0)  # let the broker accept the backlog before sampling
        during = usage(process)
        probe = roundtrip(ports["tcp"])
        seconds, left = wait_closed(socks, 60)
        for sock in socks:
            sock.close()
        time.sleep(0.5)
        results.append({"wave": wave, "open": len(socks), "during": during,
                        "probe_roundtrip_s": round(probe, 4),
                        "closed_after_s": round(seconds, 2), "not_closed": left,
                        "after": usage(process)})
        print(json.dumps(results[-1]))
    return {"connections_per_wave": count, "base": base, "waves": results}


def slow_requests(ports):
    token = b"YWRtaW46cHVibGlj"  # admin:public
    return {
        "tcp": (ports["tcp"], P.connect("slowloris-" + "x" * 100)),
        "ws": (ports["ws"], b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            b"Sec-WebSocket-Version: 13\r\n\r\n"),
        "http": (ports["http"], b"GET /api/v4/brokers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Authorization: Basic " + token + b"\r\n\r\n"),
    }


def slowloris(process, ports, count):
    """``count`` peers per listener dribbling one byte per second."""
    peers = []
    for name, (port, data) in slow_requests(ports).items():
        for sock in open_many(port, count):
            peers.append({"name": name, "sock": sock, "data": data, "sent": 0,
                          "closed": None})
    start = time.monotonic()
    during = None
    probes = []
    while any(p["closed"] is None for p in peers) and time.monotonic() - start < 60:
        tick = time.monotonic()
        for peer in peers:
            if peer["closed"] is not None:
                continue
            try:
                data = peer["sock"].recv(4096)
                if not data:
                    peer["closed"] = tick - start
                    continue
            except BlockingIOError:
                pass
            except OSError:
                peer["closed"] = tick - start
                continue
            if peer["sent"] < len(peer["data"]):
                try:
                    peer["sock"].send(peer["data"][peer["sent"]:peer["sent"] + 1])
                    peer["sent"] += 1
                except OSError:
                    peer["closed"] = tick - start
        if during is None and tick - start > 3:
            during = usage(process)
        probes.append(roundtrip(ports["tcp"]))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    report = {"per_listener": count, "during": during, "after": usage(process),
              "probe_roundtrip_max_s": round(max(probes), 4)}
    for name in ("tcp", "ws", "http"):
        closed = [p["closed"] for p in peers if p["name"] == name]
        sent = [p["sent"] for p in peers if p["name"] == name]
        report[name] = {"closed_max_s": max(c if c is not None else 999 for c in closed),
                        "not_closed": sum(1 for c in closed if c is None),
                        "bytes_sent_max": max(sent), "request_bytes": len(
                            slow_requests(ports)[name][1])}
    for peer in peers:
        peer["sock"].close()
    print(json.dumps(report))
    return report


def rate(workdir, seconds):
    process, ports, _log = start_broker(workdir, extra='rate_limit { conn_messages_in = "2000,1s" }\n')
    try:
        sub = socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10)
        sub.sendall(P.connect("rate-sub") + P.subscribe(1, [("rate/t", 0)]))
        sub.recv(64)
        pub = socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10)
        pub.sendall(P.connect("rate-pub"))
        pub.recv(64)
        one = P.publish("rate/t", b"x" * 100)
        expected = len(one)
        burst = one * 200
        pub.setblocking(False)
        sub.setblocking(False)
        received = 0
        buffer = 0
        start = time.monotonic()
        marks = []
        while time.monotonic() - start < seconds:
            try:
                pub.send(burst)
            except BlockingIOError:
                pass
            try:
                data = sub.recv(1 << 20)
                buffer += len(data)
            except BlockingIOError:
                time.sleep(0.005)
            received = buffer // expected
            marks.append((time.monotonic() - start, received))
        elapsed = time.monotonic() - start
        # Rate after the first second's burst allowance.
        after_burst = [m for m in marks if m[0] >= 1.0]
        steady = ((after_burst[-1][1] - after_burst[0][1])
                  / (after_burst[-1][0] - after_burst[0][0])) if len(after_burst) > 1 else 0
        pub.close()
        sub.close()
        report = {"configured": "2000,1s", "seconds": round(elapsed, 1),
                  "delivered": received,
                  "allowed_at_most": int(2000 + 2000 * elapsed),
                  "steady_msgs_per_s": round(steady, 1),
                  "publisher_connected_to_the_end": True}
        print(json.dumps(report))
        return report
    finally:
        process.terminate()
        process.wait(30)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--half-open", type=int, default=5000)
    parser.add_argument("--slow", type=int, default=300, help="slow peers per listener")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        process, ports, _log = start_broker(os.path.join(workdir, "a"))
        try:
            broker = psutil.Process(process.pid)
            summary = {
                "date": datetime.date.today().isoformat(),
                "half_open": half_open_waves(broker, ports, args.waves, args.half_open),
                "slowloris": slowloris(broker, ports, args.slow),
            }
        finally:
            process.terminate()
            process.wait(30)
        summary["rate"] = rate(os.path.join(workdir, "b"), args.rate_seconds)
    out = os.path.join(ROOT, "bench", "results", f"flood-{summary['date']}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
