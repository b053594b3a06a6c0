"""NanoMQ rule engine: SQL (pure), rule table (pure), actions and service (Twisted)."""
