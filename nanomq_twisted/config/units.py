"""Size and duration converters for NanoMQ configuration values.

NanoMQ reads sizes and durations as strings and converts them itself (see
spec/config.md §1.2); these functions reproduce those rules so a file means
the same thing here as in NanoMQ.  Deliberate leniencies, all documented in
docs/configuration.md:

* a bare number given for a duration is read as seconds (NanoMQ ignores it);
* ``"500ms"`` for a seconds-duration is 0.5 s (NanoMQ reads 500 *minutes*);
* durations are floats, so sub-second values survive.

Every converter raises :class:`ValueError` with the phrase that ends up in a
:class:`~nanomq_twisted.config.errors.ConfigError` ("expected ..."), so the
loader can attach file and key information without re-wording.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_duration_ms", "parse_rate", "parse_size", "period_text"]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024 ** 2,
    "mb": 1024 ** 2,
    "g": 1024 ** 3,
    "gb": 1024 ** 3,
}

# Seconds per unit.  Only the units NanoMQ knows, plus "ms" (our leniency).
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

_SIZE_HINT = 'a size like "10MB"'
_DURATION_HINT = 'a duration like "10s"'
_MS_HINT = 'a duration in milliseconds like "800ms" or 800'
_RATE_HINT = 'a rate like "100,10s" or "100KB/s"'


def _reject_bool(value: object, hint: str) -> None:
    # bool is an int subclass: ``true`` must not silently become 1 byte/second.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected {hint}, got {_show(value)}")


_UNITS = {
    _SIZE_HINT: "units: B, K/KB, M/MB, G/GB",
    _DURATION_HINT: "units: ms, s, m, h, d",
    _MS_HINT: "units: ms, s, m, h, d",
    _RATE_HINT: "an amount, then a duration after ',' or '/'; 0 = no limit",
}


def _fail(hint: str, value: object) -> ValueError:
    return ValueError(f"expected {hint}, got {_show(value)} ({_UNITS[hint]})")


def _show(value: object) -> str:
    """Render a rejected value the way the user most likely wrote it."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def parse_size(value: object) -> int:
    """Convert a NanoMQ size (``10MB``, ``512K``, ``2048``) to bytes.

    Units are 1024-based and case-insensitive; a plain number is bytes.
    Fractions such as ``1.5MB`` are accepted and truncated to whole bytes.
    """
    _reject_bool(value, _SIZE_HINT)
    if isinstance(value, (int, float)):
        if value < 0 or value != int(value):
            raise _fail(_SIZE_HINT, value)
        return int(value)
    if isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match:
            unit = match.group(2).lower()
            if unit in _SIZE_UNITS:
                return int(float(match.group(1)) * _SIZE_UNITS[unit])
    raise _fail(_SIZE_HINT, value)


def parse_duration(value: object) -> float:
    """Convert a duration to seconds (float).

    ``10s``, ``5m``, ``2h``, ``1d`` as in NanoMQ; ``500ms`` and bare numbers
    (seconds) are our leniencies.  Negative values are rejected.
    """
    _reject_bool(value, _DURATION_HINT)
    if isinstance(value, (int, float)):
        if value < 0:
            raise _fail(_DURATION_HINT, value)
        return float(value)
    if isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match:
            unit = match.group(2).lower() or "s"
            if unit in _DURATION_UNITS:
                return float(match.group(1)) * _DURATION_UNITS[unit]
    raise _fail(_DURATION_HINT, value)


def parse_duration_ms(value: object) -> int:
    """Convert a millisecond duration (``800ms``, ``2s``, ``800``) to int ms.

    NanoMQ uses this form for ``quic_initial_rtt_ms``/``quic_max_ack_delay_ms``;
    we also use it for the integer-millisecond keys (``resend_interval``,
    ``cancel_timeout``, ...) so that ``"5s"`` there means 5000 ms instead of
    an error.
    """
    _reject_bool(value, _MS_HINT)
    if isinstance(value, (int, float)):
        if value < 0:
            raise _fail(_MS_HINT, value)
        return int(value)
    if isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match:
            unit = match.group(2).lower() or "ms"
            if unit in _DURATION_UNITS:
                return round(float(match.group(1)) * _DURATION_UNITS[unit] * 1000)
    raise _fail(_MS_HINT, value)


def parse_rate(value: object, sized: bool = False) -> tuple[float, float] | None:
    """Convert an EMQX-style rate to ``(amount, seconds)``, or None (off).

    EMQX 4 writes ``"100,10s"`` (``zone.external.rate_limit.
    conn_messages_in``), EMQX 5 ``"100/10s"`` or ``"100/s"``; both are
    accepted.  With ``sized`` the amount is a size (``"100KB,10s"``: bytes).
    ``"0"``, ``"infinity"`` and ``""`` mean no limit, as in EMQX.
    """
    _reject_bool(value, _RATE_HINT)
    if isinstance(value, (int, float)) and value == 0:
        return None
    if not isinstance(value, str):
        raise _fail(_RATE_HINT, value)
    text = value.strip()
    if text.lower() in ("", "0", "infinity"):
        return None
    parts = re.split(r"[,/]", text)
    if len(parts) != 2:
        raise _fail(_RATE_HINT, value)
    amount_text, period = parts[0].strip(), parts[1].strip()
    if re.fullmatch(r"[a-zA-Z]+", period):
        period = "1" + period  # "100/s": one second
    try:
        amount = parse_size(amount_text) if sized else float(amount_text)
        seconds = parse_duration(period)
    except ValueError:
        raise _fail(_RATE_HINT, value) from None
    if amount <= 0 or seconds <= 0:
        raise _fail(_RATE_HINT, value)
    return float(amount), seconds


def period_text(value: object) -> str | None:
    """Turn a pyhocon period object back into text such as ``"10s"``.

    The loader asks pyhocon to keep ``10s`` as a string, but should that ever
    fail (a pyhocon version without the hook we use) the tree contains
    ``timedelta``/``relativedelta`` objects instead; this puts the text back
    so the converters above still see what the user wrote (up to unit
    normalisation).  Returns None for anything that is not a period.
    """
    from datetime import timedelta

    if isinstance(value, timedelta):
        micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
        if micros % 1_000_000:
            return f"{micros // 1000}ms"
        seconds = micros // 1_000_000
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    names = ("years", "months", "days", "hours", "minutes", "seconds", "microseconds")
    if all(hasattr(value, name) for name in names) and type(value).__name__ == "relativedelta":
        if value.years or value.months:
            return (f"{value.years}y" if value.years else f"{value.months}mo")
        total = timedelta(
            days=value.days,
            hours=value.hours,
            minutes=value.minutes,
            seconds=value.seconds,
            microseconds=value.microseconds,
        )
        return period_text(total)
    return None
