"""
Helpers shared by the TLS, WebSocket and QUIC end-to-end tests.

``start_with(testcase, conf)`` starts the broker (plain TCP on port 0 plus
whatever ``conf`` adds) and returns the ``RunningBroker`` and a
``{listener name: port}`` map.  Certificates are made per test with
``tests.certs``.  Paths are written into HOCON with ``json.dumps`` so any
temp directory name is a valid string.
"""

import json
import socket
import ssl

from twisted.internet import defer

from ..certs import make_certs
from .support import TIMEOUT, start_broker


def q(value):
    """A HOCON string literal."""
    return json.dumps(value)


def ssl_block(certs, name=None, verify_peer=False, fail_if_no_peer_cert=False,
              keyfile=None, key_password=None, cacertfile=None,
              use_identity_as_username=False):
    """A ``listeners.ssl`` block on 127.0.0.1:0 (named when ``name``)."""
    lines = [
        'bind = "127.0.0.1:0"',
        f"keyfile = {q(keyfile or certs.server_key)}",
        f"certfile = {q(certs.server_cert)}",
        f"cacertfile = {q(cacertfile or certs.ca)}",
        "verify_peer = %s" % ("true" if verify_peer else "false"),
        "fail_if_no_peer_cert = %s" % ("true" if fail_if_no_peer_cert else "false"),
    ]
    if key_password:
        lines.append(f"key_password = {q(key_password)}")
    if use_identity_as_username:
        lines.append("use_identity_as_username = true")
    where = "listeners.ssl" if name is None else f"listeners.ssl.{name}"
    body = "\n  ".join(lines)
    return f"{where} {{\n  {body}\n}}\n"


def new_certs(testcase):
    return make_certs(testcase.mktemp())


@defer.inlineCallbacks
def start_with(testcase, conf, names=("tcp",)):
    running = yield start_broker(testcase, conf)
    ports = {}
    for name in names:
        service = running.listener(name)
        if service.port is None:
            # Not a second yield on a Deferred inlineCallbacks already
            # consumed: read the port from the service.
            yield service.listening
        ports[name] = service.port.getHost().port
    return running, ports


def tls_socket(port, ca, certfile=None, keyfile=None, timeout=TIMEOUT):
    """A blocking TLS client socket to 127.0.0.1:``port`` (handshake done)."""
    context = ssl.create_default_context(cafile=ca)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def read_until_closed(sock):
    """Everything ``sock`` receives until EOF (a reset counts as EOF)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


# Hand-framed MQTT 3.1.1 packets (never from the project's codec).
def frame(first_byte, body):
    """Fixed header (Variable Byte Integer length) + ``body``."""
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([first_byte]) + encoded + body


def mqtt_connect(client_id, keepalive=60):
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid
    return frame(0x10, body)


def mqtt_subscribe(packet_id, topic, qos=0):
    t = topic.encode()
    body = packet_id.to_bytes(2, "big") + len(t).to_bytes(2, "big") + t + bytes([qos])
    return frame(0x82, body)


def mqtt_publish(topic, payload, qos=0, packet_id=1):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t
    if qos:
        body += packet_id.to_bytes(2, "big")
    body += payload
    return frame(0x30 | (qos << 1), body)


CONNACK_OK = b"\x20\x02\x00\x00"
