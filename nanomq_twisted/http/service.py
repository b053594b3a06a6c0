"""The HTTP listener of the REST API."""

from twisted.web.server import Site

from ..transport.listeners import ListenerService, tcp_endpoint
from .api import RootAPI


def build_http_listener(control, reactor):
    """``(RootAPI, ListenerService named "http")`` serving the REST API of
    ``control`` (an ``IControl``) on ``http_server.ip_addr:port``."""
    api = RootAPI(control, reactor)
    site = Site(api.app.resource(), reactor=reactor, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    http = api.http
    endpoint = tcp_endpoint(reactor, http.ip_addr, http.port)
    return api, ListenerService("http", endpoint, site, "(HTTP REST API)")
