"""What a request made the API do, structurally: every SQL statement its engine ran (the text,
without the values) and every call its Temporal client made (the method and what it named: the
workflow, update, query or signal). Two requests did the same work when both lists are equal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from temporalio.client import Client, Interceptor, OutboundInterceptor


class SqlStatements:
    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        self._engine = engine

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(re.sub(r"\s+", " ", statement).strip())

    def take(self) -> list[str]:
        """What was seen so far, forgotten here."""
        seen, self.seen = self.seen, []
        return seen

    @contextmanager
    def listening(self) -> Iterator[None]:
        event.listen(self._engine, "before_cursor_execute", self._record)
        try:
            yield
        finally:
            event.remove(self._engine, "before_cursor_execute", self._record)


# What a call names, by the field its input carries it in.
_NAMED = ("workflow", "update", "query", "signal")


class TemporalCalls(Interceptor):
    """Records every outbound client call (all of `OutboundInterceptor`'s methods)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def intercept_client(self, outbound: OutboundInterceptor) -> OutboundInterceptor:
        seen = self.seen

        def recording(name: str) -> Any:
            async def call(self: OutboundInterceptor, input: Any) -> Any:
                named = next((str(getattr(input, f)) for f in _NAMED if hasattr(input, f)), "")
                seen.append((name, named))
                return await getattr(OutboundInterceptor, name)(self, input)

            return call

        methods = {
            name: recording(name)
            for name in dir(OutboundInterceptor)
            if not name.startswith("_") and callable(getattr(OutboundInterceptor, name))
        }
        return type("Recording", (OutboundInterceptor,), methods)(outbound)


def recorded(client: Client, calls: TemporalCalls) -> Client:
    """The same connection, with `calls` watching it."""
    config = client.config()
    config["interceptors"] = [*config.get("interceptors", []), calls]
    return Client(**config)
