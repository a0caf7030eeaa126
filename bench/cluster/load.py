"""A steady load on the cluster, through its edge, as the people of `bench.people` make it: every
so often someone recovers their account (code by mail, then a new password), and every so often
someone files a support claim that the supervisor `sam` takes and turns down (the claim's
workflow then ends).

People behave as people and well-made clients do: a request that gets no answer or a 503 is
tried again (after `Retry-After`, at most `RETRY_CAP_S`); anything else unexpected ends that
person's attempt, and the case counts as lost. Every answer is kept with its time, so a fault's
figures say what users saw: requests that failed, the longest spell of 503s, how long after the
fault every case had completed, cases lost, and mails sent twice.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.people import Person
from bench.stack import CODE_IN_TEXT
from reclaim.notify.outbox import parse_mail, text_of

RETRY_CAP_S = 3.0
PATIENCE_S = 240.0  # how long one person keeps trying before their case counts as lost
NEW_PASSWORD = "a new password for the cluster 7"
CASE_LINK = re.compile(r"/recover/([A-Za-z0-9_-]+)")


class GaveUp(RuntimeError):
    """A person stopped trying: the answer they got, or that nothing came in time."""


class Inbox:
    """The mail host's folder, read as everyone's inbox: recovery codes by case, and how many
    times each message (by Message-ID) arrived."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seen: set[str] = set()
        self.codes: dict[str, str] = {}  # case id -> its newest code
        self.message_ids: Counter[str] = Counter()
        self._read_at = 0.0

    def skip_existing(self) -> None:
        """Read only the mails that arrive from now on."""
        self._seen |= {path.name for path in self.folder.glob("*.eml")}

    def refresh(self, at_most_every: float = 0.0) -> None:
        """Read the mails that arrived since the last read (not again within `at_most_every`
        seconds: every person waiting on a code asks, the folder is read once for them all)."""
        if time.monotonic() - self._read_at < at_most_every:
            return
        self._read_at = time.monotonic()
        for path in sorted(self.folder.glob("*.eml")):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            message = parse_mail(path.read_bytes())
            self.message_ids[str(message["Message-ID"])] += 1
            text = text_of(message)
            code, case = CODE_IN_TEXT.search(text), CASE_LINK.search(text)
            if code and case and "code" in str(message["Subject"]).lower():
                self.codes[case.group(1)] = code.group(1)

    def sent_twice(self) -> int:
        return sum(count - 1 for count in self.message_ids.values() if count > 1)

    async def code_for(self, case_id: str, within: float) -> str:
        deadline = time.monotonic() + within
        while True:
            self.refresh(at_most_every=0.1)
            if case_id in self.codes:
                return self.codes[case_id]
            if time.monotonic() > deadline:
                raise GaveUp(f"no code mail for {case_id} within {within:.0f} s")
            await asyncio.sleep(0.2)


@dataclass
class Answer:
    at: float
    what: str  # "ok", "503", "500", "connection", ...


@dataclass
class Load:
    edge_url: str
    staff_key: str
    inbox: Inbox
    answers: list[Answer] = field(default_factory=list)
    opened: dict[str, float] = field(default_factory=dict)  # case id -> when
    completed: dict[str, float] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)  # case id (or person) -> why
    retry_after_missing: int = 0
    # Seconds a person takes to read a mail and type its code (or the supervisor to get to a
    # new claim), drawn per person from this range: cases are open, and their workflows held
    # by a worker, while hosts fail.
    think_s: tuple[float, float] = (2.0, 6.0)
    # (when, seconds): each call from its first try to its success, retries included.
    waits: list[tuple[float, float]] = field(default_factory=list)
    _http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Load:
        limits = httpx.Limits(max_connections=200, keepalive_expiry=2)
        self._http = httpx.AsyncClient(base_url=self.edge_url, timeout=30, limits=limits)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    # -- one request, as a patient client ----------------------------------------------------

    async def call(
        self, method: str, path: str, expect: tuple[int, ...], deadline: float, **kwargs: Any
    ) -> httpx.Response:
        assert self._http is not None
        first = time.monotonic()
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as err:
                self.answers.append(Answer(time.monotonic(), f"no answer ({type(err).__name__})"))
                wait = 0.5
            else:
                status = response.status_code
                if status in expect:
                    now = time.monotonic()
                    self.answers.append(Answer(now, "ok"))
                    self.waits.append((now, now - first))
                    return response
                self.answers.append(Answer(time.monotonic(), str(status)))
                if status == 503:
                    after = response.headers.get("Retry-After")
                    if after is None:
                        self.retry_after_missing += 1
                    wait = min(float(after or 1), RETRY_CAP_S)
                elif status >= 500:
                    wait = 0.5
                else:
                    raise GaveUp(f"{method} {path}: {status} {response.text[:200]}")
            if time.monotonic() + wait > deadline:
                raise GaveUp(f"{method} {path}: no success before the person gave up")
            await asyncio.sleep(wait)

    # -- what people do ----------------------------------------------------------------------

    async def recover(self, person: Person) -> None:
        deadline = time.monotonic() + PATIENCE_S
        case_id = person.email
        try:
            opened = await self.call(
                "POST", "/v1/recovery", (202,), deadline, json={"identifier": person.email}
            )
            case_id = str(opened.json()["case_id"])
            self.opened[case_id] = time.monotonic()
            code = await self.inbox.code_for(case_id, deadline - time.monotonic())
            await self.think(person)
            granted = await self.call(
                "POST", f"/v1/recovery/{case_id}/code", (200,), deadline, json={"code": code}
            )
            await self.call(
                "POST",
                f"/v1/recovery/{case_id}/password",
                (200,),
                deadline,
                json={"reset_token": granted.json()["reset_token"], "new_password": NEW_PASSWORD},
            )
            self.completed[case_id] = time.monotonic()
        except GaveUp as err:
            self.lost[case_id] = str(err)

    async def claim(self, person: Person) -> None:
        deadline = time.monotonic() + PATIENCE_S
        staff = {"Authorization": f"Bearer {self.staff_key}"}
        case_id = f"claim by {person.username}"
        try:
            case_id = await self.file_claim(person, deadline)
            self.opened[case_id] = time.monotonic()
            await self.think(person)
            # A retried assign or reject whose first try was done answers 409: the claim's
            # state then says whether it was.
            await self.call(
                "POST", f"/v1/staff/cases/{case_id}/assign", (202, 409), deadline, headers=staff
            )
            answer = await self.reject(case_id, deadline, (202, 409))
            if answer.status_code == 409:
                answer = await self.call(
                    "GET", f"/v1/staff/cases/{case_id}", (200,), deadline, headers=staff
                )
            if answer.json()["state"] != "rejected":
                raise GaveUp(f"claim {case_id} ended {answer.json()['state']}")
            self.completed[case_id] = time.monotonic()
        except GaveUp as err:
            self.lost[case_id] = str(err)

    async def file_claim(self, person: Person, deadline: float) -> str:
        """`person` says someone took their account over; the claim's id."""
        filed = await self.call(
            "POST",
            "/v1/support-cases",
            (202,),
            deadline,
            json={
                "username": person.username,
                "contact_email": f"new.{person.email}",
                "reason": "compromised",
                "description": "Someone took my account over last night.",
            },
        )
        return str(filed.json()["case_id"])

    async def reject(
        self, case_id: str, deadline: float, expect: tuple[int, ...] = (202,)
    ) -> httpx.Response:
        """The supervisor turns the claim down."""
        return await self.call(
            "POST",
            f"/v1/staff/cases/{case_id}/reject",
            expect,
            deadline,
            headers={"Authorization": f"Bearer {self.staff_key}"},
            json={"reason": "We could not tell that the account is yours."},
        )

    async def think(self, person: Person) -> None:
        low, high = self.think_s
        await asyncio.sleep(random.Random(person.email).uniform(low, high))

    async def steady(
        self,
        people: list[Person],
        seconds: float,
        per_second: float,
        claim_every: int,
        fault: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
    ) -> dict[str, Any]:
        """Start someone every 1/`per_second` s for `seconds` (every `claim_every`-th files a
        claim), `fault` running meanwhile; then wait until every person has finished."""
        began = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        fault_task = asyncio.create_task(fault())
        for index, person in enumerate(people):
            at = began + index / per_second
            if at - began > seconds:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            work = self.claim if (index + 1) % claim_every == 0 else self.recover
            tasks.append(asyncio.create_task(work(person)))
        fault_report = await fault_task
        await asyncio.gather(*tasks)
        fault_report["people"] = len(tasks)
        return fault_report

    # -- figures -----------------------------------------------------------------------------

    def figures(self, fault_ended: float) -> dict[str, Any]:
        self.inbox.refresh()
        kinds = Counter(a.what for a in self.answers)
        last_done = max(self.completed.values(), default=fault_ended)
        durations = sorted(self.completed[c] - self.opened[c] for c in self.completed)
        return {
            "requests": len(self.answers),
            "answers": dict(sorted(kinds.items())),
            "failed": sum(n for what, n in kinds.items() if what not in ("ok", "503")),
            "server_errors_500": kinds.get("500", 0),
            "unavailable_503": kinds.get("503", 0),
            "retry_after_missing": self.retry_after_missing,
            "longest_503_spell_s": round(self.longest_spell(), 1),
            "cases_opened": len(self.opened),
            "cases_completed": len(self.completed),
            "cases_lost": len(self.lost),
            "lost": dict(list(self.lost.items())[:10]),
            "all_completed_after_fault_s": round(max(0.0, last_done - fault_ended), 1),
            # From the case's opening to its end, the person's own pace included.
            "median_case_s": round(durations[len(durations) // 2], 1) if durations else None,
            "slowest_case_s": round(durations[-1], 1) if durations else None,
            "mails_sent_twice": self.inbox.sent_twice(),
        }

    def longest_spell(self) -> float:
        """The longest time from a 503 to the next success of any request."""
        longest, began = 0.0, None
        for answer in sorted(self.answers, key=lambda a: a.at):
            if answer.what == "503" and began is None:
                began = answer.at
            elif answer.what == "ok" and began is not None:
                longest, began = max(longest, answer.at - began), None
        return longest
