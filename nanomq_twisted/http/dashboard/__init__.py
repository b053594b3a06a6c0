# -*- test-case-name: tests.protocol.test_http_login -*-
"""
The web dashboard's files: ``/`` and ``/dashboard/...`` on the HTTP port
(``http_server.dashboard.enable``; docs/dashboard.md).

The dashboard is a set of static files in ``static/`` (HTML, CSS and
plain ES modules, shipped as package data; no build step) that talks to
``/api/v4`` only.  This resource serves them and nothing else:

- ``/`` and ``/dashboard`` redirect to ``/dashboard/`` (``index.html``);
- the login page and what it needs (`PUBLIC`) are served to anyone;
  every other file only to a logged-in browser (login.py's session
  cookie; an ``Authorization`` header the REST API accepts; anything with
  ``auth_type = no_auth``).  A page is otherwise redirected to the login
  page, any other file answered 401;
- only the files that exist under ``static/`` are served (no directory
  listing, no ``..``), with a content security policy that allows this
  origin only -- and WebSocket connections, for the live subscription
  view on the broker's WS listener, which is another port.
"""

import os

from ..login import logged_in

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

#: Files served without a login: the login page and what it loads.
PUBLIC = frozenset({"login.html", "login.js", "style.css", "icon.svg"})

TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}

HEADERS = {
    b"content-security-policy": (
        b"default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",
}


def is_dashboard_path(path):
    """Whether the request path (``request.postpath``) is the dashboard's."""
    return path in ([], [b""]) or path[0] == b"dashboard"


def _files(root):
    """``{"pages/clients.js": absolute path}`` of every servable file."""
    found = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            if os.path.splitext(name)[1] in TYPES:
                path = os.path.join(directory, name)
                found[os.path.relpath(path, root).replace(os.sep, "/")] = path
    return found


class DashboardFiles:
    """Serves the files of ``root`` (see the module docstring)."""

    def __init__(self, root=STATIC):
        self.files = _files(root)

    def render(self, api, request):
        segments = [seg.decode("utf-8", "replace") for seg in request.postpath]
        if segments in ([], [""], ["dashboard"]):
            return _redirect(request, b"/dashboard/")
        name = "/".join(segments[1:]) or "index.html"
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _text(request, 405, "Method not allowed")
        path = self.files.get(name)
        if path is None:
            return _text(request, 404, "Not found")
        if name not in PUBLIC and not logged_in(api, request, file_load=True):
            if name.endswith(".html"):
                return _redirect(request, b"/dashboard/login.html")
            return _text(request, 401, "Log in first")
        with open(path, "rb") as handle:
            body = handle.read()
        for header, value in HEADERS.items():
            request.setHeader(header, value)
        request.setHeader(b"content-type", TYPES[os.path.splitext(name)[1]])
        return b"" if request.method == b"HEAD" else body


def _redirect(request, location):
    request.setResponseCode(303)
    request.setHeader(b"location", location)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"See " + location


def _text(request, status, message):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode("utf-8")
