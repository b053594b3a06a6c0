"""The HTTP listener of the REST API."""

from twisted.logger import Logger

from ..transport.listeners import ListenerService, tcp_endpoint
from .api import RootAPI
from .auth import default_credentials_exposed
from .deadline import DeadlineSite

_log = Logger()


def build_http_listener(control, reactor):
    """``(RootAPI, ListenerService named "http")`` serving the REST API of
    ``control`` (an ``IControl``) on ``http_server.ip_addr:port``.

    Once the port is bound, a REST API that takes the shipped
    ``admin``/``public`` from beyond loopback is warned about, once per
    start of the listener (``/ctrl/restart`` starts a new one).  Every
    request must arrive within ``http_server.request_timeout``
    (http/deadline.py)."""
    api = RootAPI(control, reactor)
    http = api.http
    site = DeadlineSite(api.app.resource(), reactor, http.request_timeout, api.broker.stats,
                        parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    endpoint = tcp_endpoint(reactor, http.ip_addr, http.port)
    service = ListenerService("http", endpoint, site, "(HTTP REST API)")
    service.listening.addCallback(lambda port: warn_if_exposed(api, port))
    return api, service


def warn_if_exposed(api, port):
    """Log the warning if ``api`` takes the default credentials beyond
    loopback; ``port`` is the bound ``IListeningPort`` (returned)."""
    if default_credentials_exposed(api.http):
        _log.warn(
            "The REST API on {host}:{port} accepts the default credentials "
            "admin/public from any address: set http_server.username and "
            "http_server.password, or bind http_server.ip_addr to 127.0.0.1",
            host=api.http.ip_addr, port=port.getHost().port,
        )
    return port
