# -*- test-case-name: tests.e2e.test_webhook -*-
"""
``webhook { url, headers, body.encoding, pool_size, cancel_timeout, events }``:
broker events POSTed as JSON with treq, never in MQTT's way.

The core calls our observer (registered for the events that have hooks)
and, for ``on_message_publish``, delivers the messages of the hook's topics
(we subscribe them in the routing trie) synchronously; all we do there is build the body (pure,
`core/webhook_events.py`) and append it to a bounded queue.  At most
``pool_size`` requests are in flight over one persistent connection pool;
each has ``cancel_timeout`` ms to finish.  A request that fails (no
connection, timeout, a 5xx answer) is retried ``RETRIES`` times with
exponential backoff; then it is dropped and counted.  When the queue is full
new events are dropped and counted (``stats``), so a dead or slow sink costs
bounded memory and never delays a packet.
"""

from collections import deque

import treq
from treq.client import HTTPClient
from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer

from .core.interfaces import IMessageConsumer
from .core.webhook_events import CORE_TO_HOOKS, EventFilter, body_for, message_publish

__all__ = ["WebhookService", "build_webhook"]

#: Events waiting for a free sender, at most.
QUEUE_LIMIT = 10000
RETRIES = 3
BACKOFF = 0.2  # seconds, doubled per retry


class WebhookStats:
    def __init__(self):
        self.queued = 0
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0


@implementer(IMessageConsumer)
class WebhookService(Service):
    """Feeds the configured hook events to ``config.url`` while running."""

    _log = Logger()

    def __init__(self, config, broker, reactor, http=None, queue_limit=QUEUE_LIMIT):
        self.setName("webhook")
        self.config = config
        self.broker = broker
        self.reactor = reactor
        self.filter = EventFilter(config.events)
        self.stats = WebhookStats()
        self.queue = deque()
        self.queue_limit = queue_limit
        self.active = 0
        self.headers = {k: [v] for k, v in config.headers.items()}
        self.timeout = config.cancel_timeout / 1000.0
        self.retries = RETRIES
        self.backoff = BACKOFF
        self._http = http
        self._pool = None
        self._inflight = set()
        self._retry_calls = set()
        self._hooks = {
            core: tuple(h for h in hooks if h in self.filter)
            for core, hooks in CORE_TO_HOOKS.items()
        }

    # -- wiring ----------------------------------------------------------

    def startService(self):
        super().startService()
        if self._http is None:
            self._pool = HTTPConnectionPool(self.reactor, persistent=True)
            self._pool.maxPersistentPerHost = self.config.pool_size
            self._http = HTTPClient(Agent(self.reactor, pool=self._pool))
        events = self.broker.events
        for event, hooks in self._hooks.items():
            if hooks:
                events.listen(event, self.observe)
        if "on_message_publish" in self.filter:
            # A subscriber of the routing trie for the hook's topics (all
            # of them without one), ``$SYS`` included as in NanoMQ.
            extensions = self.broker.extensions
            for topic_filter in self.filter.topics("on_message_publish"):
                extensions.add(self, topic_filter or "#", sees_dollar=True)

    def stopService(self):
        super().stopService()
        self.broker.events.unlisten_all(self.observe)
        self.broker.extensions.remove_consumer(self)
        self.queue.clear()
        for call in list(self._retry_calls):
            if call.active():
                call.cancel()
        self._retry_calls.clear()
        for d in list(self._inflight):
            d.cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            return pool.closeCachedConnections()
        return None

    # -- from the core (synchronous, cheap) ---------------------------------

    def observe(self, event, **fields):
        hooks = self._hooks.get(event)
        if not hooks:
            return
        now = fields.get("now")
        if now is None:
            now = self.reactor.seconds()
        message = fields.get("message")
        topic = message.topic if message is not None else None
        for hook in hooks:
            if not self.filter.wants(hook, topic):
                continue
            for body in body_for(hook, event, fields, self.config.body_encoding, now):
                self._enqueue(body)

    consumer_name = "webhook"

    def deliver(self, message, now):
        """A routed message matching a hook topic (IMessageConsumer)."""
        if self.filter.wants("on_message_publish", message.topic):
            self._enqueue(message_publish(message, self.config.body_encoding, now))

    # -- sending ---------------------------------------------------------------

    def _enqueue(self, body):
        if not self.running:
            return
        if len(self.queue) >= self.queue_limit:
            self.stats.dropped += 1
            return
        self.stats.queued += 1
        self.queue.append(body)
        self._pump()

    def _pump(self):
        while self.queue and self.active < self.config.pool_size and self.running:
            body = self.queue.popleft()
            self.active += 1
            self._send(body, 0)

    def _send(self, body, attempt):
        d = self._http.post(
            self.config.url, data=body, headers=self.headers, timeout=self.timeout
        )
        self._inflight.add(d)

        def answered(response):
            self._inflight.discard(d)
            done = treq.content(response)
            if response.code >= 500:
                done.addBoth(lambda _: self._retry(body, attempt, f"HTTP {response.code}"))
            else:
                done.addBoth(lambda _: self._finished(True))

        def failed(failure):
            self._inflight.discard(d)
            if failure.check(defer.CancelledError) and not self.running:
                return
            self._retry(body, attempt, failure.getErrorMessage())
            return

        d.addCallbacks(answered, failed)

    def _retry(self, body, attempt, why):
        if attempt >= self.retries or not self.running:
            self._log.warn(
                "WebHook POST to {url} failed ({why}); event dropped", url=self.config.url,
                why=why,
            )
            self._finished(False)
            return
        self.stats.retried += 1

        def again():
            self._retry_calls.discard(call)
            if self.running:
                self._send(body, attempt + 1)

        call = self.reactor.callLater(self.backoff * 2 ** attempt, again)
        self._retry_calls.add(call)

    def _finished(self, ok):
        self.active -= 1
        if ok:
            self.stats.sent += 1
        else:
            self.stats.failed += 1
        self._pump()


def build_webhook(config, broker, reactor):
    """A ``WebhookService`` when ``webhook {}`` is on, else None."""
    if config.webhook is None or not config.webhook.url:
        return None
    return WebhookService(config.webhook, broker, reactor)
