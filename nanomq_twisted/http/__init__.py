"""NanoMQ's HTTP REST API V4 on Klein (the only package that imports klein).

See docs/rest-api.md; ``service.build_http_service`` puts it in the tree.
"""
