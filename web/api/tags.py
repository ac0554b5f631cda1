"""Tags, Mailpit's way: list them, set a message's, rename or delete one everywhere."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import tagging
from web.api.common import ApiError, endpoint, guard_change, json_body, ok, string_list
from web.pages import store_of


def tag_names(names: list[str]) -> list[str]:
    """People's tag names, tidied and each once; 400 saying which are not names."""
    try:
        return tagging.named(names)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def new_name(data: dict[str, Any]) -> str:
    """The body's `Name`, a tag name; 400 when missing or not one."""
    name = data.get("Name")
    if not isinstance(name, str):
        raise ApiError(400, "Name must be the new name of the tag")
    return tag_names([name])[0]


@endpoint
async def list_tags(request: Request) -> Response:
    """GET /api/v1/tags: every tag in use, sorted (case-insensitive)."""
    return JSONResponse(await store_of(request).tags.names())


@endpoint
async def set_tags(request: Request) -> Response:
    """PUT /api/v1/tags: {"IDs": [...], "Tags": [...]}: these messages get exactly these
    tags (an empty or absent Tags removes theirs)."""
    guard_change(request)
    data = await json_body(request)
    ids = string_list(data, "IDs")
    if not ids:
        raise ApiError(400, "IDs must list at least one message")
    await store_of(request).set_tags(ids, tag_names(string_list(data, "Tags")))
    return ok()


@endpoint
async def rename_tag(request: Request) -> Response:
    """PUT /api/v1/tags/{Tag}: {"Name": "new"}: rename the tag on every message."""
    guard_change(request)
    name = new_name(await json_body(request))
    if await store_of(request).rename_tag(str(request.path_params["Tag"]), name) is None:
        raise ApiError(404, "tag not found")
    return ok()


@endpoint
async def delete_tag(request: Request) -> Response:
    """DELETE /api/v1/tags/{Tag}: take the tag off every message (the messages stay)."""
    guard_change(request)
    if await store_of(request).delete_tag(str(request.path_params["Tag"])) is None:
        raise ApiError(404, "tag not found")
    return ok()
