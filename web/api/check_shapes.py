"""The answers of the check routes, as Mailpit's API shapes them (its
swagger's HTMLCheckResponse, LinkCheckResponse and SpamAssassinResponse), each described
once: the routes answer with these shapes made from the engines' answers
(relay/checks/), and the OpenAPI document takes their schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from web.api.oas import BOOLEAN, INTEGER, NUMBER, STRING, STRINGS, Field, Shape, array, described

Answer = Mapping[str, Any]


def _copy(name: str, schema: dict[str, Any]) -> Field[Answer]:
    """A field taken as it is from the engine's answer."""
    return Field(name, schema, lambda answer: answer[name])


HTML_CHECK_RESULT: Shape[Answer] = Shape(
    "HTMLCheckResult",
    (
        _copy("Name", STRING),
        _copy("Platform", STRING),
        _copy("Family", STRING),
        _copy("Version", STRING),
        _copy("Support", described(STRING, "yes, partial or no")),
        _copy("NoteNumber", described(STRING, "the note of NotesByNumber that applies")),
    ),
)
"""One email client version's support of a feature."""

HTML_CHECK_SCORE: Shape[Answer] = Shape(
    "HTMLCheckScore",
    (
        _copy("Found", described(INTEGER, "how often the message uses the feature")),
        _copy("Supported", described(NUMBER, "% of the clients that support it")),
        _copy("Partial", NUMBER),
        _copy("Unsupported", NUMBER),
    ),
)

HTML_CHECK_WARNING: Shape[Answer] = Shape(
    "HTMLCheckWarning",
    (
        _copy("Slug", STRING),
        _copy("Title", STRING),
        _copy("Description", described(STRING, "caniemail's Markdown")),
        _copy("URL", STRING),
        _copy("Category", described(STRING, "html or css")),
        _copy("Tags", STRINGS),
        _copy("Keywords", STRING),
        Field(
            "Results",
            array(HTML_CHECK_RESULT.ref),
            lambda w: [HTML_CHECK_RESULT(r) for r in w["Results"]],
        ),
        _copy("NotesByNumber", {"type": "object", "additionalProperties": STRING}),
        Field("Score", HTML_CHECK_SCORE.ref, lambda w: HTML_CHECK_SCORE(w["Score"])),
    ),
)
"""One feature the message's HTML uses, with every client's support."""

HTML_CHECK_TOTAL: Shape[Answer] = Shape(
    "HTMLCheckTotal",
    (
        _copy("Tests", described(INTEGER, "features the check looks for")),
        _copy("Nodes", described(INTEGER, "element nodes of the HTML")),
        _copy("Supported", described(NUMBER, "the overall score, %")),
        _copy("Partial", NUMBER),
        _copy("Unsupported", NUMBER),
    ),
)

HTML_CHECK: Shape[Answer] = Shape(
    "HTMLCheckResponse",
    (
        Field(
            "Warnings",
            array(HTML_CHECK_WARNING.ref),
            lambda a: [HTML_CHECK_WARNING(w) for w in a["Warnings"]],
        ),
        Field("Total", HTML_CHECK_TOTAL.ref, lambda a: HTML_CHECK_TOTAL(a["Total"])),
        _copy(
            "Platforms",
            described(
                {"type": "object", "additionalProperties": STRINGS},
                "each platform with the client families tested on it",
            ),
        ),
    ),
)

LINK: Shape[Answer] = Shape(
    "Link",
    (
        _copy("URL", STRING),
        _copy("StatusCode", described(INTEGER, "the HTTP status; 0: no answer (see Status)")),
        _copy("Status", STRING),
    ),
)

LINK_CHECK: Shape[Answer] = Shape(
    "LinkCheckResponse",
    (
        _copy("Errors", described(INTEGER, "links without an answer, or answering 400 or more")),
        Field("Links", array(LINK.ref), lambda a: [LINK(link) for link in a["Links"]]),
    ),
)

SPAM_RULE: Shape[Answer] = Shape(
    "Rule",
    (_copy("Score", NUMBER), _copy("Name", STRING), _copy("Description", STRING)),
)

SPAM_CHECK: Shape[Answer] = Shape(
    "SpamAssassinResponse",
    (
        _copy("IsSpam", BOOLEAN),
        _copy("Score", NUMBER),
        _copy("Error", described(STRING, "why there is no verdict (spamd off, down, slow)")),
        Field("Rules", array(SPAM_RULE.ref), lambda a: [SPAM_RULE(r) for r in a["Rules"]]),
    ),
)

CHECK_SHAPES = (
    HTML_CHECK_RESULT,
    HTML_CHECK_SCORE,
    HTML_CHECK_WARNING,
    HTML_CHECK_TOTAL,
    HTML_CHECK,
    LINK,
    LINK_CHECK,
    SPAM_RULE,
    SPAM_CHECK,
)
