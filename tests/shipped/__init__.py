"""The configuration users run: ``etc/nanomq.conf`` itself (ports moved to
free loopback ones, data in a temporary folder) and every example under
``etc/examples/``, driven by the clients people use."""
