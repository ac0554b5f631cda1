"""The generic, type-driven loader behind relay.config.

`setting(default, help, check)` declares a key of a frozen dataclass; `build` makes that
dataclass from a TOML table, converting by the type hints (str, int, float, bool, Literal,
tuples, tables of X, nested dataclasses) and raising `ConfigError` naming the file, the
key and what was expected.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Literal, TypeVar

from relay.errors import ConfigError

T = TypeVar("T")

Check = Callable[[Any], str | None]
"""A value check: returns None when the value is good, else what was expected."""


def setting(
    default: Any,
    help: str,
    check: Check | None = None,
    secret: bool = False,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """Declare a config key with its default, its help text and an optional value check.

    A `secret` key may also be given as RELAY_<SECTION>_<KEY> in the environment, and its
    value is never repeated in an error (nor that of a key whose metadata says "quiet").
    `convert` turns a value that passed the check into the one kept (a database URL as
    typed into the driver's).
    """
    meta = {"help": help, "check": check, "secret": secret, "convert": convert}
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple or a default_factory-free immutable default")
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (dict, Mapping):
        return f"a table of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    """Check `value` against the type `tp` and build the typed value."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, key, source)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(source, key, _type_name(tp), value)
        return value
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(source, key, _type_name(tp), value)
        return tuple(_convert(item_type, v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin in (dict, Mapping):
        value_type = typing.get_args(tp)[1]
        if not isinstance(value, dict):
            raise ConfigError(source, key, _type_name(tp), value)
        return types.MappingProxyType(
            {k: _convert(value_type, v, f"{key}.{k}", source) for k, v in value.items()}
        )
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(source, key, "a table", value)
        return build(typing.cast(type, tp), value, source, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, "a number", value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, "an integer", value)
        return value
    if not isinstance(value, tp):
        raise ConfigError(source, key, _type_name(tp), value)
    return value


def build(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build the dataclass `cls` from a TOML table, rejecting unknown keys and bad values."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, raw in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(source, full, f"a known key ({known})", None)
        meta = fields[key].metadata
        hidden = meta.get("secret") or meta.get("quiet")
        try:
            value = _convert(hints[key], raw, full, source)
        except ConfigError as exc:
            raise ConfigError(source, exc.key, exc.expected, None if hidden else exc.got) from None
        check = meta.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(source, full, problem, None if hidden else raw)
        convert = meta.get("convert")
        values[key] = value if convert is None or value is None else convert(value)
    return cls(**values)
