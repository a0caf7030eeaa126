from __future__ import annotations


class Undeliverable(Exception):
    """The provider refused the message for good (bad address, number unreachable): retrying
    cannot help. Any other exception from a channel is taken as a passing outage."""
