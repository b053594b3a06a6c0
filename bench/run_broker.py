"""Fallback launcher: build the broker directly, bypassing the config
loader, for when ``python -m nanomq_twisted -c conf`` cannot start (the
config package was being finished while this bench was written).
Usage: ``python bench/run_broker.py PORT``.  Uses the default (epoll)
reactor and the same settings as the bench HOCON file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    from twisted.internet import reactor

    from nanomq_twisted.config.schema import MqttConfig
    from nanomq_twisted.core.broker import Broker
    from nanomq_twisted.transport.protocol import MQTTServerFactory
    from nanomq_twisted.transport.timers import CoreTimerService

    port = int(sys.argv[1])
    broker = Broker(MqttConfig(max_mqueue_len=100000), clock=reactor.seconds)
    CoreTimerService(broker, reactor).startService()
    reactor.listenTCP(port, MQTTServerFactory(broker, reactor), backlog=4096, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
