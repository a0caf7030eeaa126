"""What the Temporal Web UI says about a case, in words an operator reads without the code:
the static details set at start (what this kind of case is, how it moves, how to act on it)
and the one-line current details each workflow sets at every step.

Everything here is shown in the UI and stored in history (encrypted by the codec, but shown
decrypted to every operator): states, channels, counts and times only, never an address, a
username, an account id, a code or a token. Workflows import it, so it stays deterministic.
"""

from __future__ import annotations

from datetime import datetime

from reclaim.temporal.search_attributes import (
    ACCOUNT_BAN,
    ACCOUNT_DELETION,
    SELF_SERVICE,
    SUPPORT_CLAIM,
)

STATIC_DETAILS = {
    SELF_SERVICE: """\
**Self-service recovery**: a one-time code is sent to the account's email or phone; \
the person types it, then chooses a new password.

- `awaiting_code` → `verified` → `completed`
- ends `expired` (case deadline), `locked` (too many wrong codes), `superseded` (a newer case
  for the same account) or `cancelled` (`reclaim cases cancel <id>`)
- codes and reset tokens are HMAC digests here; the password an argon2 hash
- queries: `status` (what the person sees)
""",
    SUPPORT_CLAIM: """\
**Support claim**: someone who cannot use self-service asks a person to recover the account. \
A reviewer decides with the evidence checks (never the evidence itself).

- `submitted` → `in_review` ⇄ `awaiting_claimant` → `approved` | `rejected` | `abandoned`;
  `cancelled` by an operator (`reclaim cases cancel <id>`)
- two-person rule: a reviewer's approval of a high-risk claim waits in `awaiting_confirmation`
  for another member of staff, a supervisor (`confirm_approval`); unconfirmed within the
  window it lapses back to `in_review`
- a missed first-response or decision deadline sets `RecoveryEscalated` and mails the leads
- reviewers act in the console (`/console`) or through the staff API
  (`/v1/staff/cases/<id>/…`)
- queries: `staff_view` (everything a reviewer sees), `claimant_view`
""",
    ACCOUNT_DELETION: """\
**Account deletion**: the holder deactivated the account; it is purged when the grace period \
ends unless they sign in (or complete a recovery) first.

- `requested` → `deactivated` → `purged` | `reactivated`; or `refused` / `superseded`
- the database decides: a purge applies only while the account still names this case
- queries: `status`
""",
    ACCOUNT_BAN: """\
**Account ban**: an operator suspended the account, for a time or for good.

- `requested` → `banned` → `ended` (time up) | `lifted`; or `refused` / `superseded`
- lift early with `reclaim accounts unban <user>`
- queries: `status`
""",
}


def current_details(state: str, *facts: str | None) -> str:
    """`**state**: fact · fact`, the line the UI shows as the workflow's current details."""
    shown = [fact for fact in facts if fact]
    return f"**{state}**" + (": " + " · ".join(shown) if shown else "")


def at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
