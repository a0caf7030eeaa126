"""Timeouts and retry policies shared by every workflow type."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from reclaim.contracts import CaseError

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Database and directory work is retried until it succeeds, unless the case or the account no
# longer allows it (or the directory refused the password for good).
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[
        CaseError.SUPERSEDED,
        CaseError.NO_ACCOUNT,
        CaseError.WEAK_PASSWORD,
        CaseError.PASSWORD_REUSED,
    ],
)
# Telling people something is retried for a day at most, with patience.
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)
)
NOTICE_DEADLINE = timedelta(days=1)
