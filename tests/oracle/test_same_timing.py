"""Known and unknown identifiers take the same time to be "sent": a case with nothing to
deliver waits as long as a real send takes (`Notifier.typical_send_seconds`, learnt from the
last real sends), and its delivery state goes the same way, so nobody watching a case can
tell whether the identifier names an account.

The courier here takes `SEND` seconds per message (a slow provider), so the time a send takes
is large against everything else a case does."""

from __future__ import annotations

import asyncio
import time

import pytest

from reclaim.contracts import Channel
from reclaim.notify.courier import Courier
from reclaim.notify.messages import Message
from tests.stack import Stack

OLD = "correct horse battery staple"
SEND = 1.0  # seconds a message takes to go out


async def _deliveries(stack: Stack, identifier: str) -> tuple[list[str], float]:
    """Open a case: the delivery states it shows in turn until "sent", and how long after the
    request it first showed "sent"."""
    started = time.monotonic()
    opened = await stack.open_case(identifier)
    states: list[str] = []
    deadline = started + 20
    while not states or states[-1] != "sent":
        body = (await stack.http.get(f"/v1/recovery/{opened['case_id']}")).json()
        if not states or states[-1] != body["delivery"]:
            states.append(body["delivery"])
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.02)
    return states, time.monotonic() - started


async def test_an_unknown_identifiers_code_is_sent_no_sooner_than_a_known_ones(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    real = Courier.deliver

    async def slow(
        self: Courier, channel: Channel, recipient: str, message: Message, message_id: str
    ) -> str | None:
        await asyncio.sleep(SEND)  # the provider takes its time
        return await real(self, channel, recipient, message, message_id)

    monkeypatch.setattr(Courier, "deliver", slow)
    await stack.add_account("jane", "jane@example.com", None, OLD)

    known = await _deliveries(stack, "jane")  # a real send: the time a send takes, learnt
    unknown = await _deliveries(stack, "ghost_user")  # nobody: nothing to send (a decoy)

    assert stack.mail.to("jane@example.com")  # the control: the known code went out
    assert known[0] == unknown[0] == ["sending", "sent"], (known, unknown)
    assert known[1] >= SEND, known
    assert unknown[1] >= SEND, f"the unknown case was sent after {unknown[1]:.2f} s"
    assert len(stack.mail.messages) == 1  # and nothing went out for the unknown one
