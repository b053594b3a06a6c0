# -*- test-case-name: tests.unit.test_outbound -*-
"""
The outbound QoS 1/2 engine: packet identifiers, the in-flight window and
the acknowledgement flows of [MQTT-4.3.2] and [MQTT-4.3.3], for one peer.

Both directions of the broker that *send* QoS 1/2 PUBLISHes use it: a
client's `Session` (core/session.py) and the broker's own MQTT client
(client/session.py, spoken by bridges and remote republish).  What differs between them -- how the
waiting queue overflows, when to resend, what to persist -- stays with the
owner; the state machine of one message in flight lives here once:

    start --PUBLISH--> awaiting PUBACK (QoS 1) ----PUBACK----> done
                       awaiting PUBREC (QoS 2) ----PUBREC----> released
                                                   (>= 0x80: done)
                       released --PUBREL--> awaiting PUBCOMP --PUBCOMP--> done

A packet identifier is in use from ``start`` until the flow is done
[MQTT-2.2.1-3]; `allocate` never hands out one in use, nor one of the
``busy`` set the owner passes (a bridge's SUBSCRIBE/UNSUBSCRIBE ids).
Ids are allocated round robin, so a just-finished id is not reused at once.

Pure: no I/O, no clock; ``now`` comes in with each call.
"""


#: Packet identifiers are 1..65535 [MQTT-2.2.1].
MAX_PACKET_ID = 65535


class Flow:
    """One message in flight.

    ``message`` is the owner's (a core ``Message``, a bridge's
    ``Outgoing``); ``retain`` and ``sub_ids`` are the variant sent;
    ``released`` is true once PUBREC arrived (PUBREL sent, PUBCOMP awaited);
    ``first_sent``/``sent_at`` are when it was first and last sent;
    ``seq`` is the owner's persistence number (None: not persisted).
    """

    __slots__ = (
        "first_sent",
        "message",
        "packet_id",
        "qos",
        "released",
        "retain",
        "sent_at",
        "seq",
        "sub_ids",
    )

    def __init__(self, message, qos, retain=False, sub_ids=None, sent_at=0.0, seq=None):
        self.message = message
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.packet_id = None
        self.released = False
        self.first_sent = self.sent_at = sent_at
        self.seq = seq

    def __repr__(self):
        return (f"Flow(pid={self.packet_id}, qos={self.qos}, "
                f"released={self.released}, seq={self.seq})")


class OutboundFlows:
    """The in-flight QoS 1/2 messages towards one peer, by packet id, in
    the order they were first sent."""

    __slots__ = ("_next_id", "inflight")

    def __init__(self):
        self.inflight = {}
        self._next_id = 1

    def __len__(self):
        return len(self.inflight)

    def __contains__(self, packet_id):
        return packet_id in self.inflight

    def get(self, packet_id):
        return self.inflight.get(packet_id)

    def values(self):
        return self.inflight.values()

    # -- identifiers and starting ---------------------------------------

    def allocate(self, busy=None):
        """A free packet identifier, or None when all 65,535 are in use."""
        inflight = self.inflight
        if len(inflight) >= MAX_PACKET_ID:
            return None
        pid = self._next_id
        for _ in range(MAX_PACKET_ID):
            if pid not in inflight and (busy is None or pid not in busy):
                self._next_id = pid % MAX_PACKET_ID + 1
                return pid
            pid = pid % MAX_PACKET_ID + 1
        return None

    def start(self, flow, now, busy=None):
        """Give ``flow`` a packet id and put it in flight; returns the id,
        or None (the flow is not started) when no id is free."""
        pid = self.allocate(busy)
        if pid is None:
            return None
        flow.packet_id = pid
        flow.released = False
        flow.first_sent = flow.sent_at = now
        self.inflight[pid] = flow
        return pid

    def restore(self, flow):
        """Put back a flow read from persistence, keeping its packet id
        (and keep allocating after the highest one)."""
        pid = flow.packet_id
        self.inflight[pid] = flow
        if pid >= self._next_id:
            self._next_id = pid % MAX_PACKET_ID + 1

    # -- acknowledgements ----------------------------------------------------

    def puback(self, packet_id):
        """PUBACK: the finished QoS 1 flow, or None if there is none."""
        flow = self.inflight.get(packet_id)
        if flow is None or flow.qos != 1:
            return None
        del self.inflight[packet_id]
        return flow

    def pubrec(self, packet_id, reason_code, now):
        """PUBREC: ``(flow, release)``.

        ``release`` is true when PUBREL must be sent (also for a repeated
        PUBREC of a flow already released); a failing reason code (0x80 and
        up) ends the flow instead [MQTT-4.3.3-4 ...], and ``(None, False)``
        means no QoS 2 flow has this id.
        """
        flow = self.inflight.get(packet_id)
        if flow is None or flow.qos != 2:
            return None, False
        if reason_code >= 0x80:
            del self.inflight[packet_id]
            return flow, False
        flow.released = True
        flow.sent_at = now
        return flow, True

    def pubcomp(self, packet_id):
        """PUBCOMP: the finished QoS 2 flow, or None."""
        flow = self.inflight.get(packet_id)
        if flow is None or not flow.released:
            return None
        del self.inflight[packet_id]
        return flow

    def discard(self, packet_id):
        """Forget a flow without an acknowledgement (cancelled, oversize)."""
        return self.inflight.pop(packet_id, None)

    # -- resending ---------------------------------------------------------

    def due(self, now, older_than=None, limit=None):
        """The flows to resend now, oldest first, their ``sent_at`` set to
        ``now``: all of them (after a reconnect [MQTT-4.4.0-1]) or those last
        sent at or before ``older_than`` (a 3.x retry timer); at most
        ``limit`` of them when it is given (NanoMQ's client resends one
        message per timer tick)."""
        out = []
        for flow in self.inflight.values():
            if older_than is not None and flow.sent_at > older_than:
                continue
            flow.sent_at = now
            out.append(flow)
            if limit is not None and len(out) >= limit:
                break
        return out

    def take_all(self):
        """Empty the window; its flows in send order (to queue them again as
        new messages when the peer did not keep the session)."""
        flows = list(self.inflight.values())
        self.inflight.clear()
        return flows

    def clear(self):
        self.inflight.clear()
