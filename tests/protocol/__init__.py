"""Protocol tests: Twisted adapters on in-memory transports and task.Clock."""
