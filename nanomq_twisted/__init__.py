"""nanomq-twisted: a NanoMQ-compatible MQTT broker on Twisted.

Layers, lowest first (see docs/architecture.md): ``mqtt`` (wire codec),
``core`` (broker domain), ``config`` -- all pure Python -- then the Twisted
adapters ``transport`` and ``tap``.
"""

__version__ = "0.1.0"
