"""The digests that travel in place of secrets: each bound to its case and its use, and to
the server secret, so one read in a history or a table opens nothing else."""

from __future__ import annotations

from reclaim.security import Keys

KEYS = Keys(b"security-tests-secret-0123456789")


def test_a_code_digest_is_bound_to_its_case_and_every_digest_to_its_use():
    code = "123456"

    # The same code in another case has another digest: one case's digest opens no other.
    assert KEYS.code_digest("rc_a", code) != KEYS.code_digest("rc_b", code)
    assert KEYS.code_digest("rc_a", code) == KEYS.code_digest("rc_a", code)
    # The same string as a code, a reset or session token, a claim token, a staff key or
    # an identifier: five different digests.
    uses = {
        KEYS.code_digest("rc_a", code),
        KEYS.token_digest(code),
        KEYS.scoped_digest("claim", code),
        KEYS.scoped_digest("staff", code),
        KEYS.identifier_digest(code),
    }
    assert len(uses) == 5
    # Another server secret, other digests: nothing carries over between deployments.
    other = Keys(b"another-deployment-secret-987654")
    assert other.code_digest("rc_a", code) != KEYS.code_digest("rc_a", code)
    assert other.token_digest(code) != KEYS.token_digest(code)
