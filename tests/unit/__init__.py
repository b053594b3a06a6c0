"""Unit tests: pure modules, no reactor."""
