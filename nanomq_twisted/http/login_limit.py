# -*- test-case-name: tests.protocol.test_http_login_limit -*-
"""
Failed dashboard logins counted per source address, so a password cannot
be guessed at the speed of the network.

After ``http_server.dashboard.login_attempts`` failed logins from one
address within ``login_window`` seconds (the window opens at that
address's first failure), every further login from it -- right or wrong --
is answered 429 with ``Retry-After`` until the window closes.  Only the
failing address is held back: the table is per address, so a correct
login from anywhere else goes through whatever one attacker does, and a
successful login clears its own address's count.

Pure: the time comes in as ``now`` (the HTTP server's clock), the limits
as arguments (they change with the configuration at ``/ctrl/restart``;
the table outlives it, owned by the application through `LoginSessions`).
The table is bounded: past ``max_addresses`` entries, closed windows are
dropped, then the oldest -- under a spread-out attack some address may
get its window back early, which costs a guess rate, never memory.
"""

__all__ = ["LoginLimiter"]


class _Window:
    __slots__ = ("failures", "start")

    def __init__(self, start):
        self.start = start
        self.failures = 0


class LoginLimiter:
    """Failed logins per address; ``failures`` and ``refused`` are the
    counters ``/prometheus`` shows."""

    def __init__(self, max_addresses=4096):
        self.max_addresses = max_addresses
        self._windows = {}
        #: Logins refused for wrong credentials (all addresses).
        self.failures = 0
        #: Logins answered 429 because their address had too many failures.
        self.refused = 0

    def __len__(self):
        return len(self._windows)

    def retry_after(self, address, now, attempts, window):
        """Seconds until ``address`` may try again (and one more refusal
        counted), or None when it may try now.  ``attempts`` 0: no limit."""
        entry = self._windows.get(address)
        if entry is None or attempts <= 0:
            return None
        if now >= entry.start + window:
            del self._windows[address]
            return None
        if entry.failures < attempts:
            return None
        self.refused += 1
        return entry.start + window - now

    def failed(self, address, now, attempts, window):
        """A login from ``address`` was refused; True when this failure
        is the one that holds the address back (log it: once per address
        and window)."""
        self.failures += 1
        if attempts <= 0:
            return False
        entry = self._windows.get(address)
        if entry is None or now >= entry.start + window:
            self._windows.pop(address, None)
            self._make_room(now, window)
            entry = self._windows[address] = _Window(now)
        entry.failures += 1
        return entry.failures == attempts

    def succeeded(self, address):
        """A login from ``address`` went through: its count starts over."""
        self._windows.pop(address, None)

    def _make_room(self, now, window):
        windows = self._windows
        if len(windows) < self.max_addresses:
            return
        for address in [a for a, e in windows.items() if now >= e.start + window]:
            del windows[address]
        while len(windows) >= self.max_addresses:
            del windows[next(iter(windows))]
