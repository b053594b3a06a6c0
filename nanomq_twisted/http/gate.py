# -*- test-case-name: tests.protocol.test_http_api,tests.protocol.test_http_login -*-
"""
What happens to every request before routing: the site root of the HTTP
server is a `Gate` in front of the REST API's Klein resource.

For every request (NanoMQ checks credentials first, so an unknown path
with bad credentials is a 401):

0. with ``http_server.dashboard`` on, ``/`` and ``/dashboard/...`` go to
   the dashboard's files (http/dashboard), which check the login
   themselves;
1. the method name is upper-cased (NanoMQ compares it case-insensitively)
   and one trailing ``/`` is dropped (``/brokers/`` is ``/brokers``)
   except below a mount point, whose application sees the path as sent
   (``/api/v4/rules`` reaches it as ``/``);
2. paths outside ``/api/v4`` get 404 ``{"code":102}``;
3. authentication (`auth.py`; a dashboard session cookie, `login.py`,
   when there is no ``Authorization`` header): 401 with 103/104/116.
   Only the dashboard's login, logout and whoami pass without;
4. methods other than GET/POST/PUT/DELETE: 405 ``{"code":102}``;
5. ``http_server.max_body``: a larger body is 400 ``{"code":108}``;
6. ``http_server.limit_conn``: at most that many requests are handled at
   once; the rest wait in a FIFO (a ``DeferredSemaphore``).  Nearly every
   handler is synchronous, so the bound matters for the handlers that
   answer asynchronously (bridges).
"""

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from .common import PARAM_ERROR, UNKNOWN, dumps
from .dashboard import is_dashboard_path
from .login import check_cookie

JSON = b"application/json"
ROUTED_METHODS = (b"GET", b"POST", b"PUT", b"DELETE")

#: ``(method, /api/v4/... path)`` answered without credentials: logging
#: in and out, and asking whether one is logged in.
_OPEN = frozenset({
    (b"POST", (b"dashboard", b"login")),
    (b"POST", (b"dashboard", b"logout")),
    (b"GET", (b"dashboard", b"whoami")),
})


class Gate(Resource):
    """Everything that happens before routing (see the module docstring)."""

    isLeaf = True

    def __init__(self, api, klein_resource):
        super().__init__()
        self.api = api
        self.klein = klein_resource

    def _refuse(self, request, status, code):
        request.setResponseCode(status)
        if request.method == b"HEAD":
            return b""
        return dumps({"code": code})

    def render(self, request):
        api = self.api
        request.method = request.method.upper()
        path = request.postpath
        dashboard = api.http.dashboard.enable
        if dashboard and is_dashboard_path(path):
            return api.dashboard.render(api, request)
        request.setHeader(b"content-type", JSON)
        mounted = len(path) > 2 and path[2].decode("utf-8", "replace") in api.mounts
        if mounted and len(path) == 3:
            request.postpath = path = [*path, b""]
        elif len(path) > 2 and path[-1] == b"" and not mounted:
            request.postpath = path = path[:-1]
        if path[:2] != [b"api", b"v4"]:
            return self._refuse(request, 404, UNKNOWN)
        if not (dashboard and (request.method, tuple(path[2:])) in _OPEN):
            code = self._authenticate(request, dashboard)
            if code is not None:
                return self._refuse(request, 401, code)
        if request.method not in ROUTED_METHODS:
            request.setHeader(b"allow", self._allowed(path, mounted))
            return self._refuse(request, 405, UNKNOWN)
        if _body_size(request) > api.http.max_body:
            return self._refuse(request, 400, PARAM_ERROR)
        finished = request.notifyFinish()
        api.limiter.acquire().addCallback(self._dispatch, request, finished)
        return NOT_DONE_YET

    def _authenticate(self, request, dashboard):
        """None or the 401 code: the ``Authorization`` header when there is
        one (or no dashboard), else the dashboard's session cookie."""
        api = self.api
        if (dashboard and api.http.auth_type != "no_auth"
                and request.getHeader(b"authorization") is None):
            return check_cookie(api, request)
        return api.authenticator.check(request)

    def _allowed(self, path, mounted):
        """The ``Allow`` header of a 405 (RFC 9110 section 15.5.6): the
        methods routed for ``path``, or all four when it matches nothing."""
        segments = [seg.decode("utf-8", "replace") for seg in path]
        app = self.api.app
        if mounted:
            mount = self.api.mounts.get(segments[2])
            app = mount.app if mount is not None else None
            segments = segments[3:]
        path_info = "/" + "/".join(segments)
        methods = set()
        if app is not None:
            try:
                methods = set(app.url_map.bind("").allowed_methods(path_info))
            except Exception:  # noqa: BLE001 -- a best effort header
                methods = set()
        methods = [m for m in ROUTED_METHODS if m.decode() in methods] or ROUTED_METHODS
        return b", ".join(methods)

    def _dispatch(self, _, request, finished):
        finished.addBoth(self._release)
        self.klein.render(request)

    def _release(self, result):
        self.api.limiter.release()


def _body_size(request):
    length = request.getHeader(b"content-length")
    declared = 0
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            declared = 0
    content = request.content
    actual = 0
    if content is not None:
        position = content.tell()
        content.seek(0, 2)
        actual = content.tell()
        content.seek(position)
    return max(declared, actual)
