"""FastAPI dependencies shared by the routes: the app's Services.

@router.post("/v1/search")
async def search(body: SearchRequest, services: ServicesDep) -> dict: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from almanac.server.services import Services


def get_services(request: Request) -> Services:
    """The Services of the app serving this request (set by create_app)."""
    services: Services = request.app.state.services  # app.state holds untyped attributes
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
