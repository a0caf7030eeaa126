"""Record the histories that tests/workflows/test_replay.py replays.

    python -m tests.histories.record

Run it when a deliberate, patched change to a workflow should be captured too: keep the old
files (they prove running cases still replay) and add the new ones under a new name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from reclaim.binaries import temporal_test_server
from reclaim.contracts import RecoveryRules
from reclaim.temporal import register_search_attributes
from tests.workflows.harness import Case, Ledger, recovery_case
from workflows.recovery import RecoveryWorkflow

HERE = Path(__file__).parent / "recovery"


async def _refused(call: Awaitable[object]) -> None:
    try:
        await call
    except WorkflowUpdateFailedError:
        return
    raise AssertionError("expected a refusal")


def _wrong(case: Case) -> str:
    return "000000" if case.code() != "000000" else "111111"


async def completed(case: Case) -> None:
    await _refused(case.submit(_wrong(case)))
    await case.submit(case.code())
    await case.set_password()


async def resent_then_completed(case: Case) -> None:
    await _refused(case.resend())
    await case.env.sleep(61)
    await case.resend()
    await case.wait_delivered()
    await case.submit(case.code(1))
    await case.set_password()


async def locked(case: Case) -> None:
    for _ in range(5):
        await _refused(case.submit(_wrong(case)))


async def expired_idle(case: Case) -> None:
    await case.env.sleep(601)
    await _refused(case.submit(case.code()))
    await case.env.sleep(3000)


async def undeliverable(case: Case) -> None:
    await _refused(case.submit("000000"))  # nothing arrived; a guess is just wrong
    await case.env.sleep(3601)


async def reset_window_closed(case: Case) -> None:
    await case.submit(case.code())
    await case.env.sleep(901)


async def superseded(case: Case) -> None:
    await case.handle.signal(RecoveryWorkflow.supersede)


async def cancelled(case: Case) -> None:
    await case.handle.signal(RecoveryWorkflow.cancel, "operator drill")


SCENARIOS: dict[str, tuple[Callable[[Case], Awaitable[None]], dict[str, object]]] = {
    "completed": (completed, {}),
    "resent_then_completed": (resent_then_completed, {}),
    "locked": (locked, {}),
    "expired_idle": (expired_idle, {}),
    "reset_window_closed": (reset_window_closed, {}),
    "superseded": (superseded, {}),
    "cancelled": (cancelled, {}),
    "unknown_account": (locked, {"account_id": None}),
    "undeliverable": (undeliverable, {"ledger": Ledger(refuse_delivery=True)}),
    "completed_notices_pending": (completed, {"ledger": Ledger(notices_pending=True)}),
    "superseded_at_reset": (
        lambda case: _refused_reset(case),
        {"ledger": Ledger(supersede_reset=True)},
    ),
}


async def _refused_reset(case: Case) -> None:
    await case.submit(case.code())
    await _refused(case.set_password())


async def record(version: str = "v1") -> list[Path]:
    HERE.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (play, options) in SCENARIOS.items():
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal_test_server()
        )
        try:
            await register_search_attributes(env.client, env.client.namespace)
            async with recovery_case(env, rules=RecoveryRules(), **options) as case:  # type: ignore[arg-type]
                await play(case)
                await case.handle.result()
                history = await case.handle.fetch_history()
        finally:
            await env.shutdown()
        path = HERE / f"{version}_{name}.json"
        path.write_text(history.to_json())
        written.append(path)
        print(f"recorded {path.relative_to(Path.cwd())} ({len(history.events)} events)")
    return written


if __name__ == "__main__":
    asyncio.run(record())
