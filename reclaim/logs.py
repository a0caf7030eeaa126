"""structlog: key-value lines on a terminal, JSON lines otherwise, for Reclaim's own events
and for every library logging through the standard library (uvicorn, the Temporal SDK).

Log events name cases by id, never an address, a code, a token or a password. Each activity
runs with `case_id`, `workflow_id` and `activity` bound (`ActivityLogContext`), each API
request with the case id its path names (`bound_case`).
"""

from __future__ import annotations

import logging
import re
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured: a
    caller that swaps stderr for a while (a test runner capturing a command's output) must
    not leave the loggers writing to a stream it has since closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        # Not cached: configuring again (a command run inside a test, `-v`) must reach the
        # module-level loggers that already logged.
        cache_logger_on_first_use=False,
    )
    # The standard library's loggers (uvicorn, the Temporal SDK) render the same way.
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_reclaim", False)]:
        root.removeHandler(old)
    handler._reclaim = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiosmtpd (the `reclaim dev` mail sink) logs every envelope's addresses at INFO, httpx
    # every request it makes (SMS providers' URLs), alembic every plugin it loads.
    for chatty in ("mail.log", "httpx", "httpcore", "alembic"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's loggers hand their records to the root handler above; its access lines lose
    their query strings (a claim link carries its token there once, on its way to a cookie)."""
    loggers: dict[str, Any] = {
        name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")
    }
    loggers["uvicorn.access"] = {"handlers": [], "propagate": True, "filters": ["no_query"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_query": {"()": NoQueryString}},
        "loggers": loggers,
    }


class NoQueryString(logging.Filter):
    """uvicorn's access line is `client - "METHOD path?query HTTP/x" status`: keep the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


class _BindActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            case_id=info.workflow_id, workflow_id=info.workflow_id, activity=info.activity_type
        ):
            return await super().execute_activity(input)


class ActivityLogContext(Interceptor):
    """Every log line an activity writes names its case and workflow."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivity(next)


CASE_IN_PATH = re.compile(r"/((?:rc|sc|del|ban)_[A-Za-z0-9_-]{22})(?:/|$)")


def bound_case(path: str) -> AbstractContextManager[object]:
    """Bind the case id a request's path names (if any) to every log line written inside."""
    found = CASE_IN_PATH.search(path)
    if found is None:
        return nullcontext()
    return structlog.contextvars.bound_contextvars(case_id=found.group(1))
