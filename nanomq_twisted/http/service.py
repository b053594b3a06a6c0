"""The HTTP listener of the REST API as a service of the tree."""

from twisted.web.server import Site

from ..transport.listeners import ListenerService, tcp_endpoint
from .api import RootAPI


def build_http_service(config, broker, reactor, root_service):
    """A ``ListenerService`` named ``http`` serving the REST API on
    ``http_server.ip_addr:port``; ``service.api`` is its ``RootAPI``."""
    api = RootAPI(broker, config, reactor, root_service)
    site = Site(api.app.resource(), reactor=reactor, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    http = api.http
    endpoint = tcp_endpoint(reactor, http.ip_addr, http.port)
    service = ListenerService("http", endpoint, site, "(HTTP REST API)")
    service.api = api
    return service
