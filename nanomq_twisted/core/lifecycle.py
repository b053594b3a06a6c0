# -*- test-case-name: tests.unit.test_broker -*-
"""
What happens to a session after its connection closes: wills (with their
delay), session expiry, and the 3.x retransmission timer.

All three are deadlines in the broker's one `TimerQueue` (core/timers.py);
each callback receives the time it runs at.

- A will is published when the connection ends abnormally, at once or after
  its Will Delay Interval [MQTT-3.1.3-9]; a reconnect before the delay
  cancels it, and a session that ends first sends it immediately.  The will
  is judged by the ACL as a publish of its client when it goes out.
- A session with an expiry other than "never" ends that many seconds after
  its connection closed [MQTT-3.1.2-23]; a reconnect cancels it.
- QoS 1/2 messages to a 3.x client that stay unacknowledged are resent
  after ``mqtt.retry_interval``; MQTT 5 allows resending only on reconnect
  [MQTT-4.4.0-1], so its sessions get no timer.
"""

from .durable import NEVER_EXPIRES
from .message import Message


class _WillClient:
    """Stands in for a connection when the ACL judges a delayed will."""

    __slots__ = ("client_id", "peer", "username")

    def __init__(self, client_id, username):
        self.client_id = client_id
        self.username = username
        self.peer = None


class SessionLifecycle:
    """Wills, session expiry and retries of one broker's sessions."""

    def __init__(self, broker):
        self.broker = broker

    # -- after a connection closed ------------------------------------------

    def connection_closed(self, session, conn, now, ends):
        """Schedule or send ``conn``'s will and, unless the session ``ends``
        now, its expiry."""
        if session.retry_timer is not None:
            session.retry_timer.cancel()
            session.retry_timer = None
        will = conn.will
        conn.will = None
        if will is not None:
            delay = conn.will_delay if conn.v5 else 0
            if ends or delay == 0:
                self.publish_will(will, conn.client_id, conn.username, now)
            else:
                if session.expiry_interval != NEVER_EXPIRES:
                    delay = min(delay, session.expiry_interval)
                session.will_timer = self.broker.timers.call_at(
                    now + delay, self._will_due, session, will, conn.username
                )
        if not ends and session.expiry_interval != NEVER_EXPIRES:
            self.expire_at(session, now + session.expiry_interval)

    def reconnected(self, session, clean_start, now):
        """A new connection for ``session`` (before Clean Start is applied):
        a pending will is cancelled [MQTT-3.1.3-9] -- or sent now, when the
        session is about to end -- and so is the expiry."""
        if session.will_timer is not None:
            if clean_start:
                self.will_now(session, now)
            else:
                session.will_timer.cancel()
                session.will_timer = None
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None

    # -- wills ----------------------------------------------------------------

    def _will_due(self, now, session, will, username):
        session.will_timer = None
        self.publish_will(will, session.client_id, username, now)

    def will_now(self, session, now):
        """Publish a delayed will ahead of its timer, stamped with ``now``."""
        handle = session.will_timer
        if handle is None:
            return
        session.will_timer = None
        _session, will, username = handle.args
        handle.cancel()
        self.publish_will(will, session.client_id, username, now)

    def publish_will(self, will, client_id, username, now):
        broker = self.broker
        if not broker.acl.check(_WillClient(client_id, username), "publish", will.topic):
            return
        properties = {
            k: v for k, v in will.properties.items() if k != "will_delay_interval"
        }
        message = Message(
            will.topic, will.payload, will.qos, will.retain, properties or None,
            now, client_id, username,
        )
        broker.publish(message, now)

    # -- expiry -----------------------------------------------------------------

    def expire_at(self, session, when):
        session.expiry_timer = self.broker.timers.call_at(when, self._expire, session)

    def _expire(self, now, session):
        session.expiry_timer = None
        broker = self.broker
        if session.conn is None and broker.sessions.get(session.client_id) is session:
            broker.end_session(session, now)

    # -- 3.x retransmission -------------------------------------------------

    def ensure_retry(self, session, now):
        """Arm the 3.1.1 retransmission timer for ``session``."""
        if session.retry_timer is None:
            session.retry_timer = self.broker.timers.call_at(
                now + self.broker.config.retry_interval, self._retry_due, session
            )

    def _retry_due(self, now, session):
        session.retry_timer = None
        if session.conn is None or not session.inflight:
            return
        interval = self.broker.config.retry_interval
        session.resend_inflight(now, older_than=now - interval)
        self.ensure_retry(session, now)
