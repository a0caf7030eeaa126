"""What the stateful property tests share: one time-skipping server and one worker per test
function, driven from hypothesis's synchronous state machines through one asyncio loop; a
base machine that waits, settles away from deadlines, sends updates and compares their
answers with a reference model's; and how many examples to run.

`make test` runs a bounded number of examples; `RECLAIM_DEEP_PROPERTIES=1` runs a few hundred
longer ones and shrinks a failure (see docs/testing.md)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis.stateful import RuleBasedStateMachine
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from reclaim.binaries import temporal_test_server
from reclaim.contracts import CaseError
from reclaim.temporal.connection import register_search_attributes

T = TypeVar("T")

DEEP = os.environ.get("RECLAIM_DEEP_PROPERTIES", "") not in ("", "0")

# No judgement is made this close to a deadline: while nobody skips time, the time-skipping
# server's clock runs with the wall clock, so a step lands a little later than it was read.
MARGIN = timedelta(seconds=5)


def machine_settings(*, examples: int, steps: int) -> settings:
    """Bounded for `make test`, and failing fast there: a failure is saved in hypothesis's
    example database (`.hypothesis/`), and the deep run (RECLAIM_DEEP_PROPERTIES=1, a few
    hundred examples twice as long) replays it first and shrinks it to a short program."""
    return settings(
        max_examples=300 if DEEP else examples,
        stateful_step_count=steps * 2 if DEEP else steps,
        deadline=None,
        phases=list(Phase) if DEEP else [Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    )


def near(moment: datetime | None, expected: datetime | None) -> bool:
    """The same moment, give or take MARGIN (None only for None)."""
    if moment is None or expected is None:
        return moment is expected
    return abs(moment - expected) <= MARGIN


@dataclass
class World:
    """A time-skipping server with a worker on a queue of its own, and the loop they run on.
    A state machine's rules are synchronous: each runs its coroutine with `run`."""

    loop: asyncio.AbstractEventLoop
    env: WorkflowEnvironment
    task_queue: str

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def now(self) -> datetime:
        return self.run(self.env.get_current_time())

    def sleep(self, delta: timedelta) -> None:
        """Skip this much time on the server (timers due on the way fire)."""
        if delta > timedelta(0):
            self.run(self.env.sleep(delta))

    def away_from(self, moments: Sequence[datetime | None]) -> datetime:
        """The server's time, after skipping past any of `moments` closer than MARGIN."""
        now = self.now()
        while near_ones := [m for m in moments if m is not None and abs(m - now) < MARGIN]:
            self.sleep(max(near_ones) + MARGIN + timedelta(seconds=1) - now)
            now = self.now()
        return now

    def poll(self, read: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
        """Read until `done` holds, for at most 10 s of wall-clock time."""
        deadline = time.monotonic() + 10
        while not done(value := self.run(read())):
            if time.monotonic() > deadline:
                raise AssertionError(f"never got there: {value}")
            self.run(asyncio.sleep(0.01))
        return value


@contextmanager
def time_skipping_world(*, workflows: Sequence[type], activities: Sequence[Any]) -> Iterator[World]:
    """One time-skipping server and one worker for a whole property test (every example
    starts workflows of its own on them). The server comes from the installed wheel: the
    SDK never downloads anything. The workflows run outside the sandbox, a quarter less
    work: these tests are about the rules; the other workflow tests and the replay test run
    them in the sandbox."""
    loop = asyncio.new_event_loop()
    env = loop.run_until_complete(
        WorkflowEnvironment.start_time_skipping(test_server_existing_path=temporal_test_server())
    )
    try:
        loop.run_until_complete(register_search_attributes(env.client, env.client.namespace))
        task_queue = f"prop-{uuid.uuid4().hex[:10]}"

        async def start() -> Worker:  # a worker is made and started inside its loop
            worker = Worker(
                env.client,
                task_queue=task_queue,
                workflows=workflows,
                activities=activities,
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
            await worker.__aenter__()
            return worker

        worker = loop.run_until_complete(start())
        try:
            yield World(loop, env, task_queue)
        finally:
            loop.run_until_complete(worker.__aexit__(None, None, None))
    finally:
        loop.run_until_complete(env.shutdown())
        loop.close()


@dataclass(frozen=True)
class Answer:
    """How an update ended: accepted with a result, refused by the workflow with an error type
    and details, or not found (the workflow had already finished)."""

    result: Any = None
    refusal: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    finished: bool = False


@dataclass(frozen=True)
class Expected:
    """What a model says an update answers: a refusal (its type and the details that
    matter), or an acceptance."""

    refusal: CaseError | None = None
    details: dict[str, Any] = field(default_factory=dict)


ACCEPTED = Expected()


class Model(Protocol):
    """A reference model of one case's rules, in the server's time."""

    @property
    def is_open(self) -> bool: ...

    def moments(self) -> Sequence[datetime | None]:
        """Every time at which what the rules answer changes."""
        ...

    def time_passes(self, now: datetime) -> None:
        """What the case's timers do by `now`."""
        ...

    def target(self, name: str) -> datetime | None:
        """A moment worth waiting for, by name ("deadline", ...)."""
        ...


class CaseMachine(RuleBasedStateMachine):
    """A person (or a desk) acting on one case at a time. Each step may first wait (so a
    machine that swarm testing left with one enabled rule still sees time pass), then is
    judged at a time at least MARGIN away from every deadline. When a case has ended and a
    step has asked it once more, the next case opens with the same settings: few steps of an
    example are spent on a case that can no longer change."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.handles: list[WorkflowHandle[Any, Any]] = []
        # What was asked, after how many time skips, in which model state: asking the same
        # again would only repeat the answer, so such a step asks nothing.
        self.asked: set[tuple[str, int, str]] = set()
        self.time_skips = 0
        self.unchecked = True  # something happened since the case was last looked at
        self.asked_after_the_end = False

    @property
    @abstractmethod
    def model(self) -> Model: ...

    @abstractmethod
    def open_next_case(self) -> None:
        """Open a new case like the one that ended (its handle goes last in `handles`)."""

    @property
    def handle(self) -> WorkflowHandle[Any, Any]:
        return self.handles[-1]

    def begin(self, what: str, after: str | int) -> datetime | None:
        """Wait, then the time to judge a step at; None when the step would only ask again
        what it asked with nothing changed since. A case that has ended is asked once more;
        the step after that opens the next case."""
        now = self.wait(after)
        if not self.model.is_open:
            if not self.asked_after_the_end:
                self.asked_after_the_end = True
                return now
            self.open_next_case()
            self.asked_after_the_end = False
            now = self.settled()
        return None if self._asked_already(what) else now

    def wait(self, to: str | int) -> datetime:
        """Let time pass (`to` seconds, or until just past a named moment; nothing happens
        to a case that has ended), then settle."""
        if to and self.model.is_open:
            now = self.world.now()
            if isinstance(to, int):
                until = now + timedelta(seconds=to)
            else:
                until = max(self.model.target(to) or now, now) + MARGIN + timedelta(seconds=1)
            self.world.sleep(until - now)
            self.time_skips += 1
            self.unchecked = True
        return self.settled()

    def settled(self) -> datetime:
        """The server's time, away from every moment at which the rules' answer changes, with
        the model moved to it."""
        now = self.world.away_from(self.model.moments())
        self.model.time_passes(now)
        return now

    def update(self, update: Any, *args: Any, result_type: type | None = None) -> Answer:
        call = self.handle.execute_update(update, *args, result_type=result_type)
        got = _answer(self.world, call)
        self.unchecked |= not got.finished  # a finished workflow was looked at when it ended
        return got

    def same(self, what: str, expected: Expected, got: Answer, was_open: bool) -> None:
        """The workflow answered what the model says. A case that had ended may also have
        finished its workflow: then there is nothing left to ask."""
        event(f"{what}: {'finished' if got.finished else expected.refusal or 'accepted'}")
        if got.finished:
            assert not was_open, f"the workflow of an open case was gone; expected {expected}"
            return
        if expected is ACCEPTED:
            assert got.refusal is None, f"refused {got.refusal} {got.details}"
            return
        assert expected.refusal is not None
        assert got.refusal == expected.refusal.value, (got, expected)
        for key, value in expected.details.items():
            assert got.details.get(key) == value, (key, got.details, expected)

    # Cases left open at the end of an example stay open (their timers fire as later examples
    # skip time). Terminating them made time stop skipping in about one run in four: a sleep
    # then waited 30 s of wall-clock time and timed out. (The test server holds a lock on
    # time while an activity is scheduled; terminating a workflow whose activity had just
    # run seems to leave it held.)

    def _asked_already(self, what: str) -> bool:
        key = (what, self.time_skips, repr(self.model))
        seen = key in self.asked
        self.asked.add(key)
        return seen


def _answer(world: World, update: Awaitable[Any]) -> Answer:
    try:
        return Answer(result=world.run(update))
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        assert isinstance(cause, ApplicationError), cause
        first = cause.details[0] if cause.details else {}
        return Answer(refusal=cause.type, details=dict(first) if isinstance(first, dict) else {})
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return Answer(finished=True)
        raise
