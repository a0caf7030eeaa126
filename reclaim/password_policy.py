"""Reclaim's password policy: 8 to 128 characters, not the username or the email's
local part, not guessable (zxcvbn score 3 or more). Reuse of the last 5 passwords is checked
against the hashes in the password history by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from zxcvbn import zxcvbn

MIN_LENGTH = 8
MAX_LENGTH = 128
MIN_SCORE = 3


@dataclass(frozen=True)
class PolicyVerdict:
    reasons: list[str] = field(default_factory=list)  # machine-readable, stable
    hints: list[str] = field(default_factory=list)  # human advice from zxcvbn

    @property
    def ok(self) -> bool:
        return not self.reasons


def check_password(
    password: str, *, username: str, email: str, phone: str | None = None
) -> PolicyVerdict:
    reasons: list[str] = []
    if len(password) < MIN_LENGTH:
        reasons.append("too_short")
    if len(password) > MAX_LENGTH:
        return PolicyVerdict(["too_long"], [f"Use at most {MAX_LENGTH} characters."])
    lowered = password.lower()
    local_part = email.split("@", 1)[0].lower()
    if len(username) >= 3 and username.lower() in lowered:
        reasons.append("contains_username")
    if len(local_part) >= 3 and local_part in lowered:
        reasons.append("contains_email")
    user_inputs = [username, email, local_part] + ([phone] if phone else [])
    strength = zxcvbn(password, user_inputs=user_inputs)
    hints: list[str] = []
    if strength["score"] < MIN_SCORE:
        reasons.append("too_guessable")
        feedback = strength.get("feedback") or {}
        if feedback.get("warning"):
            hints.append(feedback["warning"])
        hints.extend(feedback.get("suggestions") or [])
        if not hints:
            hints.append("Add another word or two; uncommon words are better.")
    if "too_short" in reasons:
        hints.insert(0, f"Use at least {MIN_LENGTH} characters.")
    return PolicyVerdict(reasons, hints)
