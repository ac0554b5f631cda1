"""Checks of a captured message, run when asked: HTML compatibility, links, spam.

Each engine answers in the JSON shape of the matching Mailpit route, as plain dicts
(TypedDicts) ready for `JSONResponse`, and never raises for a problem with the message or
the outside world: what went wrong is in the answer. None of them touches the store; the
caller hands over what the message holds and keeps the result.

HTML compatibility, `relay.checks.html_compat` (Mailpit's `/api/v1/message/{ID}/html-check`):

    check_html(html: str) -> HtmlCheckResponse          # pure, CPU-bound: run in a thread
    filter_platforms(result, platforms) -> HtmlCheckResponse   # e.g. ["windows", "ios"]
    platforms() -> dict[str, list[str]]                 # platform → client family names

  judged against the caniemail data shipped beside it (`caniemail.json`, MIT, see
  `caniemail.LICENSE`; `make caniemail` refreshes it from the npm package `caniemail`).
  Descriptions and notes are caniemail's Markdown text, not HTML.

Links, `relay.checks.links` (Mailpit's `/api/v1/message/{ID}/link-check?follow=`):

    extract_links(html: str = "", text: str = "") -> list[str]
    await check_links(urls, *, follow=False, options=LinkCheckOptions.from_config(checks),
                      resolver=system_resolver, verify=True) -> LinkCheckResponse

  guarded by `relay.checks.guard`: non-public addresses are refused unless
  `[checks] link_check_allow_private` (or `AddressPolicy.allow_networks`) allows them, and
  each request goes to the address that was checked.

Spam, `relay.checks.spam` (Mailpit's `/api/v1/message/{ID}/sa-check`):

    await Spamd.from_config(checks).check(raw_message: bytes) -> SpamCheckResponse

  from SpamAssassin's spamd at `[checks] spamassassin = "HOST:PORT"` (empty: off; the
  answer's Error says so), within `[checks] spamassassin_timeout` seconds.
"""
