"""What to look for in a message's HTML and CSS for each caniemail feature (by its slug).

Families of features whose slug names the thing are read off the data set itself, so a
refreshed data set brings them in without a code change: `css-PROPERTY` (a property),
`css-unit-UNIT`, `css-at-RULE`, `css-at-media-FEATURE`, `css-pseudo-class-NAME` and
`css-pseudo-element-NAME`. The tables below add what a slug does not spell: elements,
attributes, properties grouped under one feature, values, functions and keywords.
`Catalogue.detected` lists every slug the scanners can find; the others (AMP, BIMI, ...)
cannot be seen in an HTML body and are listed in `NOT_IN_HTML`.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from relay.checks import caniemail


def _same(*names: str) -> dict[str, tuple[str, ...]]:
    """{"html-NAME": ("NAME",)} for each name: features named after one element or attribute."""
    return {f"html-{name}": (name,) for name in names}


ELEMENTS: dict[str, tuple[str, ...]] = {
    **_same("abbr", "acronym", "address", "audio", "base", "bdi", "blockquote", "body"),
    **_same("code", "del", "dfn", "dialog", "div", "form", "hr", "img", "link", "marquee"),
    **_same("meter", "object", "p", "picture", "pre", "progress", "rp", "rt", "ruby"),
    **_same("select", "small", "span", "strike", "strong", "style", "svg", "table"),
    **_same("textarea", "video", "wbr"),
    "html-h1-h6": ("h1", "h2", "h3", "h4", "h5", "h6"),
    "html-lists": ("ul", "ol", "dl"),
    "html-image-maps": ("map",),
    "html-semantics": (
        *("article", "aside", "details", "figcaption", "figure", "footer", "header"),
        *("main", "mark", "nav", "section", "summary", "time"),
    ),
}
"""Feature slug → the elements that use it."""

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    **_same("align", "background", "cellpadding", "cellspacing", "dir", "height", "hidden"),
    **_same("lang", "popover", "required", "role", "target", "valign", "width"),
    **_same("aria-describedby", "aria-hidden", "aria-label", "aria-labelledby", "aria-live"),
    "html-srcset": ("srcset", "sizes"),
    "html-loading-attribute": ("loading",),
    "css-inert-attribute": ("inert",),
}
"""Feature slug → the attributes (on any element) that use it."""

TYPED_ELEMENTS: dict[tuple[str, str], str] = {
    ("input", "checkbox"): "html-input-checkbox",
    ("input", "hidden"): "html-input-hidden",
    ("input", "radio"): "html-input-radio",
    ("input", "reset"): "html-input-reset",
    ("input", "submit"): "html-input-submit",
    ("input", "text"): "html-input-text",
    ("button", "reset"): "html-button-reset",
    ("button", "submit"): "html-button-submit",
}
"""(element, its `type`) → feature; an input without a type is text, a button submit."""
DEFAULT_TYPES = {"input": "text", "button": "submit"}

IMAGE_TYPES: dict[str, str] = {
    "png": "image-png",
    "apng": "image-apng",
    "gif": "image-gif",
    "jpg": "image-jpg",
    "jpeg": "image-jpg",
    "webp": "image-webp",
    "svg": "image-svg",
    "svg+xml": "image-svg",
    "avif": "image-avif",
    "bmp": "image-bmp",
    "ico": "image-ico",
    "x-icon": "image-ico",
    "vnd.microsoft.icon": "image-ico",
    "tif": "image-tiff",
    "tiff": "image-tiff",
    "heif": "image-heif",
    "heic": "image-heif",
    "hdr": "image-hdr",
    "mp4": "image-mp4",
}
"""An image's file extension or `data:image/TYPE` subtype → its format's feature."""

SIDES = ("top", "right", "bottom", "left")
AXES = ("inline", "block")


def _each(pattern: str, *parts: tuple[str, ...]) -> tuple[str, ...]:
    """Every name `pattern` makes from one item of each part, in order."""
    return tuple(pattern.format(*combination) for combination in itertools.product(*parts))


PROPERTY_GROUPS: dict[str, tuple[str, ...]] = {
    "css-border": (
        *("border", "border-width", "border-style", "border-color"),
        *_each("border-{}{}", SIDES, ("", "-width", "-style", "-color")),
    ),
    "css-border-radius": (
        "border-radius",
        *_each("border-{}-radius", ("top-left", "top-right", "bottom-right", "bottom-left")),
    ),
    "css-border-radius-logical": _each(
        "border-{}-radius", ("start-start", "start-end", "end-start", "end-end")
    ),
    "css-border-inline-block-individual": _each(
        "border-{}-{}", AXES, ("color", "style", "width", "start", "end")
    ),
    "css-border-inline-block-longhand": _each(
        "border-{}-{}-{}", AXES, ("start", "end"), ("color", "style", "width")
    ),
    "css-border-inline-block": ("border-inline", "border-block"),
    "css-margin": ("margin", *_each("margin-{}", SIDES)),
    "css-padding": ("padding", *_each("padding-{}", SIDES)),
    "css-margin-block-start-end": ("margin-block-start", "margin-block-end"),
    "css-margin-inline-block": ("margin-inline", "margin-block"),
    "css-margin-inline-start-end": ("margin-inline-start", "margin-inline-end"),
    "css-padding-block-start-end": ("padding-block-start", "padding-block-end"),
    "css-padding-inline-block": ("padding-inline", "padding-block"),
    "css-padding-inline-start-end": ("padding-inline-start", "padding-inline-end"),
    "css-block-inline-size": ("block-size",),
    "css-gap": ("gap", "column-gap", "row-gap"),
    "css-column-layout-properties": (
        *("columns", "column-fill", "column-rule", "column-rule-color", "column-rule-style"),
        *("column-rule-width", "column-span", "column-width"),
    ),
    "css-grid-template": (
        *("grid-template", "grid-template-areas", "grid-template-columns", "grid-template-rows"),
    ),
    "css-inset": (
        *("inset", "inset-block", "inset-inline", "inset-block-start", "inset-block-end"),
        *("inset-inline-start", "inset-inline-end"),
    ),
    "css-left-right-top-bottom": ("left", "right", "top", "bottom"),
    "css-overflow": ("overflow", "overflow-x", "overflow-y", "overflow-block", "overflow-inline"),
    "css-text-emphasis": ("text-emphasis", "text-emphasis-color", "text-emphasis-style"),
    "css-transform": ("transform", "transform-origin"),
    "css-animation": ("animation",),
    "css-transition": ("transition",),
}
"""Feature slug → the properties it covers, where its slug does not name just one."""

PROPERTY_PREFIXES: dict[str, str] = {
    "animation-": "css-animation",
    "transition-": "css-transition",
    "scroll-snap-": "css-scroll-snap",
}
"""A property starting with the prefix → its feature (animation-name, ...)."""

VALUES: dict[tuple[str, str], str] = {
    ("display", "flex"): "css-display-flex",
    ("display", "inline-flex"): "css-display-flex",
    ("display", "grid"): "css-display-grid",
    ("display", "inline-grid"): "css-display-grid",
    ("display", "none"): "css-display-none",
}
"""(property, keyword value) → feature, counted beside the property's own feature."""

FUNCTIONS: dict[str, str] = {
    "calc": "css-unit-calc",
    "clamp": "css-function-clamp",
    "light-dark": "css-function-light-dark",
    "max": "css-function-max",
    "min": "css-function-min",
    "linear-gradient": "css-linear-gradient",
    "repeating-linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient",
    "repeating-radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient",
    "repeating-conic-gradient": "css-conic-gradient",
    "rgb": "css-rgb",
    "rgba": "css-rgba",
    "lch": "css-modern-color",
    "oklch": "css-modern-color",
    "lab": "css-modern-color",
    "oklab": "css-modern-color",
    "var": "css-variables",
    "fit-content": "css-intrinsic-size",
}
"""A CSS function in a value → its feature."""

KEYWORDS: dict[str, str] = {
    "initial": "css-unit-initial",
    "fit-content": "css-intrinsic-size",
    "min-content": "css-intrinsic-size",
    "max-content": "css-intrinsic-size",
    "system-ui": "css-sytem-ui",
    "ui-serif": "css-sytem-ui",
    "ui-sans-serif": "css-sytem-ui",
    "ui-rounded": "css-sytem-ui",
    "ui-monospace": "css-sytem-ui",
}
"""A keyword in a value → its feature (caniemail spells the system-ui slug "sytem")."""

MEDIA_ALIASES = {"any-hover": "hover"}
LEGACY_PSEUDO_ELEMENTS = frozenset({"before", "after", "first-line", "first-letter"})
"""Pseudo-elements that CSS 2 wrote with one colon (`:before`)."""

SELECTOR = "css-selector-"
IMPORTANT = "css-important"
COMMENTS_CSS = "css-comments"
VARIABLES = "css-variables"
NESTING = "css-nesting"
PERCENT = "css-unit-percent"
COMMENTS_HTML = "html-comments"
DOCTYPE = "html-doctype"
ANCHOR_LINKS = "html-anchor-links"
MAILTO_LINKS = "html-mailto-links"
META_COLOR_SCHEME = "html-meta-color-scheme"
BASE64_IMAGE = "image-base64"
SPECIAL_HTML = (COMMENTS_HTML, DOCTYPE, ANCHOR_LINKS, MAILTO_LINKS, META_COLOR_SCHEME, BASE64_IMAGE)
SPECIAL_CSS = (IMPORTANT, COMMENTS_CSS, VARIABLES, NESTING, PERCENT)

NOT_IN_HTML = frozenset({"amp", "bimi"})
"""Features no scan of an HTML body finds: AMP and BIMI live outside it; every other slug of
the shipped data is detected (a test keeps this list honest when the data is refreshed)."""

NOT_PROPERTIES = ("at-", "unit-", "pseudo-", "selector-", "function-")
"""Families of `css-` slugs that do not name a property."""

VENDOR_PREFIXES = ("-webkit-", "-moz-", "-ms-", "-o-")


def unprefixed(name: str) -> str:
    """A CSS name without its vendor prefix: -webkit-box-shadow → box-shadow."""
    for prefix in VENDOR_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@dataclass(frozen=True)
class Catalogue:
    """Lookup tables from a name found in the message to the slug of its feature."""

    elements: dict[str, str]
    attributes: dict[str, str]
    properties: dict[str, str]
    units: dict[str, str]
    at_rules: dict[str, str]
    media_features: dict[str, str]
    pseudo_classes: dict[str, str]
    pseudo_elements: dict[str, str]
    detected: frozenset[str]

    def property_slug(self, name: str) -> str | None:
        """The feature of a property (vendor prefix ignored), or None."""
        name = unprefixed(name)
        if name in self.properties:
            return self.properties[name]
        return next((s for p, s in PROPERTY_PREFIXES.items() if name.startswith(p)), None)


def _named(slugs: frozenset[str], prefix: str) -> dict[str, str]:
    """{NAME: slug} for every slug PREFIX + NAME of the data set."""
    return {s.removeprefix(prefix): s for s in slugs if s.startswith(prefix)}


def _invert(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {name: slug for slug, names in table.items() for name in names}


@functools.cache
def catalogue() -> Catalogue:
    """The lookup tables for the shipped data set, built once per process."""
    slugs = frozenset(caniemail.load().features)
    tabled = {*PROPERTY_GROUPS, *VALUES.values(), *FUNCTIONS.values(), *KEYWORDS.values()}
    tabled |= {*PROPERTY_PREFIXES.values(), *SPECIAL_CSS, *ATTRIBUTES}
    named_css = {
        name: slug
        for name, slug in _named(slugs, "css-").items()
        if slug not in tabled and not name.startswith(NOT_PROPERTIES)
    }
    properties = {**named_css, **_invert(PROPERTY_GROUPS)}
    units = {
        name: slug
        for name, slug in _named(slugs, "css-unit-").items()
        if name not in ("percent", "calc", "initial")
    }
    media = _named(slugs, "css-at-media-")
    media.update({alias: media[name] for alias, name in MEDIA_ALIASES.items() if name in media})
    tables = (
        _invert(ELEMENTS),
        _invert(ATTRIBUTES),
        properties,
        units,
        {k: slug for k, slug in _named(slugs, "css-at-").items() if not k.startswith("media-")},
        media,
        _named(slugs, "css-pseudo-class-"),
        _named(slugs, "css-pseudo-element-"),
    )
    found = {slug for table in tables for slug in table.values()}
    found |= {*TYPED_ELEMENTS.values(), *IMAGE_TYPES.values(), *VALUES.values()}
    found |= {*FUNCTIONS.values(), *KEYWORDS.values(), *PROPERTY_PREFIXES.values()}
    found |= {*SPECIAL_HTML, *SPECIAL_CSS, *(s for s in slugs if s.startswith(SELECTOR))}
    return Catalogue(*tables, detected=frozenset(found & slugs))
