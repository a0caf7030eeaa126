"""What every route may ask for, built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.case_calls import CaseCalls
from api.support_calls import SupportCalls
from reclaim.account_cases import AccountCases
from reclaim.claim_cases import SupportClaims
from reclaim.codec import EncryptionCodec
from reclaim.security import Keys, Passwords
from reclaim.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    client: Client
    keys: Keys
    passwords: Passwords
    cases: CaseCalls
    accounts: AccountCases
    claims: SupportClaims
    support: SupportCalls
    codec: EncryptionCodec


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


AppServices = Annotated[Services, Depends(get_services)]
