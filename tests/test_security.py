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


def test_an_actor_proof_binds_the_case_the_update_every_field_and_the_time():
    from datetime import UTC, datetime

    from reclaim.support.contracts import Approve, AssignRequest, Reviewer, StaffRole
    from reclaim.temporal.proofs import PROOF_WINDOW, ActorProofs

    minted_at = 1_800_000_000.0
    proofs = ActorProofs(KEYS.actor_proof_key, clock=lambda: minted_at)
    rita = Reviewer(7, "rita", StaffRole.REVIEWER)
    signed = proofs.sign("sc_a", "approve", Approve(rita, "checked"))
    now = datetime.fromtimestamp(minted_at + 10, UTC)

    assert proofs.problem("sc_a", "approve", signed, now) is None
    # Another case, another update, a changed note or a raised role: refused.
    assert proofs.problem("sc_b", "approve", signed, now) is not None
    assert proofs.problem("sc_a", "reject", signed, now) is not None
    changed = Approve(rita, "changed", proof=signed.proof)
    assert proofs.problem("sc_a", "approve", changed, now) is not None
    boss = Approve(Reviewer(7, "rita", StaffRole.SUPERVISOR), "checked", proof=signed.proof)
    assert proofs.problem("sc_a", "approve", boss, now) is not None
    # None, an empty or a malformed proof, or an argument of another kind.
    for arg in (Approve(rita, "checked"), Approve(rita, "checked", proof="x.y"), None):
        assert proofs.problem("sc_a", "approve", arg, now) is not None
    moved = AssignRequest(rita, None, proof=signed.proof)
    assert proofs.problem("sc_a", "approve", moved, now) is not None
    # Fresh within the window either side (hosts' clocks differ), stale beyond it.
    late = datetime.fromtimestamp(minted_at + PROOF_WINDOW + 1, UTC)
    early = datetime.fromtimestamp(minted_at - PROOF_WINDOW - 1, UTC)
    assert proofs.problem("sc_a", "approve", signed, late) == "the request's proof is out of date"
    assert proofs.problem("sc_a", "approve", signed, early) is not None


def test_every_proven_update_has_a_validator_or_the_worker_does_not_start():
    import pytest

    import worker
    from reclaim.temporal.proofs import validated

    validated(worker.WORKFLOWS, worker.PROVEN_UPDATES)  # as the worker does on import
    # The lifecycle workflows' `applied` update has no validator: naming it proven is refused
    # (the check runs in the validator step, which the SDK skips without a validator).
    with pytest.raises(ValueError, match=r"AccountBanWorkflow\.applied is proven but has no"):
        validated(worker.WORKFLOWS, [("AccountBanWorkflow", "applied")])


def test_the_codec_reads_only_what_it_sealed():
    import asyncio

    from temporalio.api.common.v1 import Payload
    from temporalio.converter import DataConverter

    from reclaim.temporal.codec import EncryptionCodec, data_converter, new_key_spec, parse_keys

    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    converter = data_converter(codec)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"role": "supervisor"}')
    empty = Payload(metadata={"encoding": b"binary/null"})

    async def round_trip() -> None:
        # Ours comes back; "no value" is taken as it is; anything else cannot be read.
        [sealed] = await converter.encode(["ours"])
        assert await converter.decode([sealed]) == ["ours"]
        assert await converter.decode([empty]) == [None]
        try:
            await converter.decode([plain])
        except Exception as err:
            assert "refused-unsealed" in str(err)
        else:
            raise AssertionError("an unsealed payload was read")
        # The codec endpoint shows it as it is (to be seen, never to be trusted).
        assert codec.reveal([plain]) == [plain]
        assert await DataConverter.default.decode([plain]) == [{"role": "supervisor"}]

    asyncio.run(round_trip())
