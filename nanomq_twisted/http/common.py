"""
Shared pieces of the REST handlers: the result codes, the one exception
type handlers raise, compact JSON, body and query parsing.

Handlers are synchronous functions over the in-memory core; they either
return ``bytes`` (a 200 body) or raise ``ApiError``.  The single place that
turns an ``ApiError`` (or anything unexpected) into a response is
``RootAPI.errors`` in `api.py`.
"""

import json
from urllib.parse import unquote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

# NanoMQ's result codes (docs/rest-api.md, "Result codes").
SUCCESS = 0
RPC_ERROR = 101
UNKNOWN = 102
WRONG_CREDENTIALS = 103
NO_CREDENTIALS = 104
MISSING_PARAMS = 107
PARAM_ERROR = 108
NOT_JSON = 109
PLUGIN_CLOSED = 111
CLIENT_OFFLINE = 112
ILLEGAL_SUBJECT = 115
TOKEN_EXPIRED = 116
NOT_HOCON = 117
WRITE_FAILED = 118
# Ours: a state quota (core/quotas.py) refused the request --
# mqtt.max_subscriptions, max_retained_messages, max_retained_bytes.
QUOTA_EXCEEDED = 119


#: Response headers naming what a refused request got wrong, where the
#: body must stay NanoMQ's bare ``{"code":N}`` (rules.py).
ERROR_PARAM_HEADER = b"x-nanomq-error-param"
ERROR_MESSAGE_HEADER = b"x-nanomq-error-message"


class ApiError(Exception):
    """Answer ``status`` with ``{"code": code}`` (plus ``extra`` keys) and
    ``headers`` (``{name bytes: text}``)."""

    def __init__(self, status, code, headers=None, **extra):
        super().__init__(status, code)
        self.status = status
        self.code = code
        self.headers = headers or {}
        self.extra = extra

    def body(self):
        out = {"code": self.code}
        out.update(self.extra)
        return dumps(out)


def dumps(value):
    """Compact JSON bytes, as NanoMQ writes them (no spaces, no newline)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ok(**fields):
    """``{"code":0, ...fields}`` as bytes."""
    out = {"code": SUCCESS}
    out.update(fields)
    return dumps(out)


def read_body(request):
    request.content.seek(0)
    return request.content.read()


def json_body(request, kind=dict):
    """The request body parsed as JSON of type ``kind``; else 400/109."""
    raw = read_body(request)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, NOT_JSON) from None
    if not isinstance(value, kind):
        raise ApiError(400, NOT_JSON)
    return value


def query_pairs(request):
    """``[(key, value), ...]`` of the query string, NanoMQ's way: pairs
    without ``=`` or with an empty key or value are dropped.  Unlike NanoMQ
    we percent-decode keys and values."""
    uri = request.uri.decode("latin-1")
    _, _, query = uri.partition("?")
    pairs = []
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            continue
        pairs.append((unquote(key), unquote(value)))
    return pairs


def is_int(value):
    """A JSON number that is an integer (``true`` is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def now_of(api):
    return api.broker.now()


JSON_CONTENT_TYPE = b"application/json"


def error_response(request, failure, log, what="REST handler"):
    """The body and status for an exception out of any REST handler: the
    one error mapping shared by the root API and its mounted sub-apps
    (Klein error handlers are per app).

    ``ApiError`` carries its own status and code; a routing miss (an
    unknown path, or a known path with another method) is NanoMQ's 404
    ``{"code":102}``; anything else is a bug, logged with its traceback and
    answered 500 ``{"code":102}``.
    """
    error = failure.value
    request.setHeader(b"content-type", JSON_CONTENT_TYPE)
    if isinstance(error, ApiError):
        request.setResponseCode(error.status)
        for name, text in error.headers.items():
            # One line of ASCII, whatever the text holds.
            value = " ".join(text.split()).encode("ascii", "backslashreplace")
            request.setHeader(name, value)
        return error.body()
    if isinstance(error, (HTTPException, RequestRedirect)):
        request.setResponseCode(404)
        return dumps({"code": UNKNOWN})
    log.failure("{what} failed", failure, what=what)
    request.setResponseCode(500)
    return dumps({"code": UNKNOWN})
