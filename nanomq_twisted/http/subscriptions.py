"""
``GET /subscriptions`` and ``/subscriptions/{clientid}``.

One item per (client, filter), shared subscriptions under their full
``$share/<group>/<filter>`` text.  NanoMQ ignores the documented query
filters; we apply them: ``clientid``, ``topic`` (the filter text, exactly),
``qos`` (0-2, else 400/108) and ``share`` (the share group name).  Other
query keys are ignored, as NanoMQ does.
"""

from .common import PARAM_ERROR, ApiError, ok, query_pairs


def _filters(request):
    tests = []
    for key, value in query_pairs(request):
        if key in ("clientid", "client_id"):
            tests.append(lambda c, f, s, v=value: c == v)
        elif key == "topic":
            tests.append(lambda c, f, s, v=value: f == v)
        elif key == "qos":
            if value not in ("0", "1", "2"):
                raise ApiError(400, PARAM_ERROR)
            tests.append(lambda c, f, s, v=int(value): s.qos == v)
        elif key == "share":
            tests.append(lambda c, f, s, v=value: s.share_group == v)
    return tests


def list_subscriptions(api, request, client_id=None):
    tests = _filters(request)
    broker = api.broker
    if client_id is not None:
        session = broker.sessions.get(client_id)
        items = (
            [(client_id, f, s) for f, s in session.subscriptions.items()]
            if session is not None
            else []
        )
    else:
        items = [
            (cid, f, s)
            for cid, session in broker.sessions.items()
            for f, s in session.subscriptions.items()
        ]
    data = [
        {"clientid": c, "topic": f, "qos": s.qos}
        for c, f, s in items
        if all(test(c, f, s) for test in tests)
    ]
    return ok(data=data)
