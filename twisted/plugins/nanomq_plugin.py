"""twistd plugin: ``twistd nanomq -c etc/nanomq.conf``.

Only a ServiceMaker stub, so that ``twistd --help`` never imports the broker.
"""

from twisted.application.service import ServiceMaker

nanomq = ServiceMaker(
    "NanoMQ", "nanomq_twisted.tap", "A NanoMQ-compatible MQTT broker", "nanomq"
)
