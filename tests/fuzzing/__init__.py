"""
A grammar-aware fuzzer of the broker over real sockets.

``grammar``: MQTT 3.1.1 and 5.0 packets of every type, written here by
hand from the specification (never with the project's codec), as
hypothesis strategies that also make plausible-but-broken variants, each
case carrying what the specification says the broker must answer.
``websocket``: the same over WebSocket, frames built with wsproto.
``runner``: sends a case to a running broker on loopback, checks the
answer, and checks that a fresh client is still served.

Used by tests/shipped/test_fuzz.py (a few thousand derandomised cases) and
tools/fuzz_broker.py (the long run, results in docs/reliability.md).
"""
