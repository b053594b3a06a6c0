"""Tests for nanomq_twisted."""
