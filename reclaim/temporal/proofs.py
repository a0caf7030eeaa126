"""Proof of who acts: an update that changes a case on someone's say-so (a reviewer's approval,
an operator's end of a hold, a contact's "Wasn't you? Stop it") carries a proof the worker
checks before the workflow's own validator runs.

Anyone who reaches the Temporal frontend can send an update with any arguments, and the
arguments name the actor (`by: {name, role}`). So the door that authenticated the actor
(a staff key, a console session, a signed link, the operator's command line) signs the whole
request: the case, the update's name, every field of its argument and the time, with an HMAC
key derived from the server secret. The worker holds the same key; the Temporal server, its
database, the Web UI and the codec endpoint never see it. A request whose proof is missing,
wrong, for another case or update, or older than `PROOF_WINDOW` is refused before anything is
written to history, and the refusal is reported (the worker writes it to the staff audit).

The check runs in a workflow interceptor, in the update's validator step: validators never
run on replay, so neither the key nor the clock of the check touches determinism. Every
update listed as proven must have a validator (the SDK only calls the validator step when
there is one); the worker refuses to start otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.converter import AdvancedJSONEncoder
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

PROOF_WINDOW = 300  # seconds either side of the workflow's clock (RECLAIM_ACTOR_PROOF_WINDOW)
FORGED_ACTOR = "forged_actor"  # the error type a refused proof answers with
_CHECK = "__reclaim_check_actor_proof"


def _canonical(arg: Any) -> str:
    """The argument as signed: every field but the proof, in a form that survives the trip
    through Temporal's JSON converter unchanged (sorted keys, ISO times, enums as values)."""
    fields = dataclasses.asdict(dataclasses.replace(arg, proof=""))
    return json.dumps(fields, cls=AdvancedJSONEncoder, sort_keys=True, separators=(",", ":"))


class ActorProofs:
    """Signs requests at the door and checks them in the worker."""

    def __init__(
        self, key: bytes, *, clock: Callable[[], float] = time.time, window: int = PROOF_WINDOW
    ) -> None:
        self._key = key
        self._clock = clock
        self._window = window

    def _mac(self, workflow_id: str, update: str, at: int, arg: Any) -> str:
        message = "\x1f".join(("v1", workflow_id, update, str(at), _canonical(arg)))
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def sign(self, workflow_id: str, update: str, arg: Any) -> Any:
        """`arg` with its `proof` filled in, for `update` on `workflow_id` now."""
        at = int(self._clock())
        return dataclasses.replace(arg, proof=f"{at}.{self._mac(workflow_id, update, at, arg)}")

    def problem(self, workflow_id: str, update: str, arg: Any, now: datetime) -> str | None:
        """Why `arg` is not a proven request for `update` on `workflow_id` at `now`, or None
        when it is one."""
        given = getattr(arg, "proof", None)
        if not dataclasses.is_dataclass(arg) or not isinstance(given, str) or not given:
            return "the request carries no proof of who sent it"
        stamp, _, mac = given.partition(".")
        if not stamp.isdigit() or not mac:
            return "the request's proof is malformed"
        at = int(stamp)
        if not hmac.compare_digest(mac, self._mac(workflow_id, update, at, arg)):
            return "the request's proof does not match it"
        if abs(now.timestamp() - at) > self._window:
            return "the request's proof is out of date"
        return None


@dataclass(frozen=True)
class RefusedAction:
    """An update turned away for its proof: who it claimed to be, what, on which case."""

    workflow_type: str
    case_id: str
    update: str
    claimed_by: str
    claimed_role: str | None
    problem: str


def claimed_actor(arg: Any) -> tuple[str, str | None]:
    """Who an unproven request says it comes from (for the record of its refusal only)."""
    by = getattr(arg, "by", None) or getattr(arg, "actor", None)
    if isinstance(by, str):
        return by[:64], None
    name = getattr(by, "name", None)
    role = getattr(by, "role", None) or getattr(by, "kind", None)
    return (
        str(name)[:64] if name is not None else "unknown",
        str(getattr(role, "value", role))[:32] if role is not None else None,
    )


class ProvenActors(Interceptor):
    """The worker's interceptor: updates named in `proven` ((workflow type, update name)
    pairs) are refused unless their argument's proof checks out; `refused` hears of each
    refusal (outside the workflow: it may write to a database)."""

    def __init__(
        self,
        proofs: ActorProofs,
        proven: Iterable[tuple[str, str]],
        refused: Callable[[RefusedAction], None],
    ) -> None:
        self._proofs = proofs
        self._proven = frozenset(proven)
        self._refused = refused

    def check(
        self, workflow_type: str, workflow_id: str, update: str, args: list[Any], now: datetime
    ) -> str | None:
        if (workflow_type, update) not in self._proven:
            return None
        arg = args[0] if len(args) == 1 else None
        problem = self._proofs.problem(workflow_id, update, arg, now)
        if problem is not None:
            name, role = claimed_actor(arg)
            self._refused(RefusedAction(workflow_type, workflow_id, update, name, role, problem))
        return problem

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        input.unsafe_extern_functions[_CHECK] = self.check
        return _CheckProofs


class _CheckProofs(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        info = workflow.info()
        check = workflow.extern_functions()[_CHECK]
        problem = check(
            info.workflow_type, info.workflow_id, input.update, input.args, workflow.now()
        )
        if problem is not None:
            workflow.logger.warning("update %s refused: %s", input.update, problem)
            raise ApplicationError(f"Refused: {problem}.", type=FORGED_ACTOR, non_retryable=True)
        self.next.handle_update_validator(input)


def validated(workflows: Iterable[type], proven: Iterable[tuple[str, str]]) -> None:
    """Raise unless every proven update of these workflows has a validator (the check runs in
    the validator step, which the SDK skips for an update without one)."""
    by_name: dict[str | None, workflow._Definition] = {}
    for cls in workflows:
        defn = workflow._Definition.must_from_class(cls)
        by_name[defn.name] = defn
    for workflow_type, update in proven:
        known = by_name.get(workflow_type)
        if known is None:
            continue
        handler = known.updates.get(update)
        if handler is None or handler.validator is None:
            raise ValueError(f"{workflow_type}.{update} is proven but has no validator")
