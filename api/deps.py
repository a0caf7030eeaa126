"""What every route may ask for: the process's services, built once by the app's lifespan
(`reclaim.services.build_services`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from reclaim.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


AppServices = Annotated[Services, Depends(get_services)]
