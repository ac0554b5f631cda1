"""The message list: filters, search, paging, bulk actions, and the fragments live updates fetch."""

from __future__ import annotations

from starlette.datastructures import FormData, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from relay import query
from relay.store import Counts, Filter, Page
from web.pages import (
    config_of,
    navigation,
    page_count,
    page_number,
    render,
    safe_next,
    store_of,
)
from web.rendering import STATUS_LABELS
from web.scope import list_mailbox, visible
from web.security import check_post

UNREAD = "unread"
ACTIONS = ("delete", "read", "unread")
MAX_SELECTION = 1000


def read_filter(
    params: QueryParams | FormData, mailbox: str | None = None
) -> tuple[Filter, dict[str, str]]:
    """The list filter in request parameters (narrowed to `mailbox`, when given), and the
    parameters that make it up."""
    keys = ("q", "status", "listener", "user", "mailbox")
    values = {k: str(params.get(k) or "").strip() for k in keys}
    status = values["status"]
    if status and status != UNREAD and status not in STATUS_LABELS:
        raise HTTPException(400, f"status must be one of {UNREAD}, {', '.join(STATUS_LABELS)}")
    filter_ = Filter(
        status=status if status != UNREAD else None,
        listener=values["listener"] or None,
        user=values["user"] or None,
        query=query.parse(values["q"]),
        unread=status == UNREAD,
        mailbox=mailbox,
    )
    return filter_, {k: v for k, v in values.items() if v}


def refuse_unreadable(filter_: Filter) -> None:
    """400 when the search holds a term that cannot be read (`is:sleepy`): such a search is
    never run, so a typo never lists, or acts on, every message."""
    if filter_.query.problems:
        raise HTTPException(400, f"The search cannot run: {'; '.join(filter_.query.problems)}")


async def message_list(request: Request) -> Response:
    """Messages newest first, filtered and searched, one page at a time."""
    filter_, params = read_filter(request.query_params, list_mailbox(request))
    page_size = config_of(request).web.page_size
    number = page_number(request)
    nav = await navigation(request)
    unreadable = bool(filter_.query.problems)
    if unreadable:  # shown with the problems, no rows and no bulk action
        page = Page([], 0, 0, page_size)
    else:
        page = await store_of(request).messages.page(
            (number - 1) * page_size,
            page_size,
            filter_,
            total=known_total(filter_, nav["counts"]),
        )
    return render(
        request,
        "list.html",
        {
            "page": page,
            "page_number": number,
            "pages": page_count(page.total, page_size),
            "params": params,
            "query": filter_.query,
            **nav,
        },
        status=400 if unreadable else 200,
    )


def known_total(filter_: Filter, counts: Counts) -> int | None:
    """The number of matching messages when the navigation's counts already tell it."""
    if filter_.query or filter_.listener or filter_.user or (filter_.status and filter_.unread):
        return None
    if filter_.mailbox is not None:
        return None  # the counts at hand may be of every mailbox
    if filter_.status:
        return counts.by_status.get(filter_.status)
    return counts.unread if filter_.unread else counts.total


async def live_rows(request: Request) -> Response:
    """Rows for the list's live updates: newer than `after`, or the one message `id`."""
    filter_, params = read_filter(request.query_params, list_mailbox(request))
    refuse_unreadable(filter_)
    after = request.query_params.get("after") or None
    one = request.query_params.get("id")
    messages = store_of(request).messages
    limit = config_of(request).web.page_size
    only = [one] if one else None
    rows = (await messages.page(0, limit, filter_, after=after, only=only, total=0)).messages
    return render(request, "_rows.html", {"messages": rows, "params": params})


async def live_nav(request: Request) -> Response:
    """The sidebar alone, for live updates of the counts."""
    _filter, params = read_filter(request.query_params)
    return render(request, "_nav.html", {"params": params, **await navigation(request)})


async def bulk_action(request: Request) -> Response:
    """Delete, or mark read or unread, the selected messages or all matching the filter."""
    form = await request.form()
    check_post(request, form)
    action = form.get("action")
    if action not in ACTIONS:
        raise HTTPException(400, f"action must be one of {', '.join(ACTIONS)}")
    back = safe_next(form.get("next"), str(request.url_for("list").path))
    store = store_of(request)
    if form.get("scope") == "all":
        if action != "delete":
            raise HTTPException(400, "only delete applies to every matching message")
        filter_, params = read_filter(form, list_mailbox(request, form))
        refuse_unreadable(filter_)
        if form.get("confirm") != "yes":
            page = await store.messages.page(0, 0, filter_)
            return render(
                request,
                "confirm.html",
                {
                    "total": page.total,
                    "params": params,
                    "next": back,
                    "query": filter_.query,
                    **await navigation(request),
                },
            )
        await store.delete_matching(filter_)
        return RedirectResponse(back, status_code=303)
    ids = await visible(request, store, [str(v) for v in form.getlist("ids")][:MAX_SELECTION])
    if not ids:
        return RedirectResponse(back, status_code=303)
    if action == "delete":
        await store.delete_messages(ids)
    else:
        await store.set_read(ids, action == "read")
    return RedirectResponse(back, status_code=303)
