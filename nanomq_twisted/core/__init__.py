"""The broker domain, free of I/O: sessions, routing, retained messages,
wills and timers.  Imports only ``nanomq_twisted.mqtt`` and the stdlib."""
