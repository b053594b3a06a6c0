"""Interfaces of the transport adapters that other adapters may ask for.

Kept apart from the implementations so that asking (``providedBy``) never
imports them: a bridge checks for `IReleasable` without importing aioquic.
"""

from zope.interface import Interface


class IReleasable(Interface):
    """A transport whose resources outlive ``connectionLost``: a QUIC
    connection keeps its UDP port through the closing period
    (transport/quic/stream.py)."""

    def released():
        """A Deferred that fires once everything the transport held is
        released."""
