"""A whole stack whose console signs staff in through the tests' own identity provider
(`sso_stack`), and the people of a support desk."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import StackParts, free_port
from tests.mailbox import MailSink
from tests.oidc_issuer import CLIENT_ID, CLIENT_SECRET, TestIssuer, running_issuer
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack


@pytest.fixture
async def issuer() -> AsyncIterator[TestIssuer]:
    async with running_issuer() as running:
        yield running


@pytest.fixture
async def sso_stack(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    """The stack on a port known in advance: its public URL is the address the identity
    provider sends browsers back to (registered there, as an operator would)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    issuer.redirect_uris.add(f"{public}/console/oidc/callback")
    settings, engine = stack_parts(
        public_url=public,
        oidc_issuer=issuer.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        console_refresh=2,  # the queue's own refresh, seen within a test's patience
    )
    async with running_stack(settings, engine, mail, sms, port=port) as running:
        yield running
