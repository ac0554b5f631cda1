"""SQLAlchemy's asyncio engine without its ORM session, which relay does not use.

`sqlalchemy.ext.asyncio`'s `__init__` imports its session and scoping modules, and so the
whole ORM (`sqlalchemy.orm`): about 0.1 s of CPU, a third of SQLAlchemy's import, at every
start of `relay serve` and `relay stats`. relay uses the engine, connections and results
alone. `load` imports those two modules of the package without running its `__init__`;
the first use of any other name of the package (`AsyncSession`, say, by a test or a
library) runs that `__init__` in place, so the package is then whole, as if imported the
usual way. When the package is already imported, `load` does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

PACKAGE = "sqlalchemy.ext.asyncio"
ENGINE_NAMES = {
    f"{PACKAGE}.engine": (
        "AsyncConnection",
        "AsyncEngine",
        "AsyncTransaction",
        "async_engine_from_config",
        "create_async_engine",
        "create_async_pool_from_url",
    ),
    f"{PACKAGE}.result": (
        "AsyncMappingResult",
        "AsyncResult",
        "AsyncScalarResult",
        "AsyncTupleResult",
    ),
}
"""The names the package's `__init__` takes from its engine and result modules."""


def load() -> None:
    """Import the package's engine and result without its ORM session (see the module)."""
    if PACKAGE in sys.modules:
        return
    parent = importlib.import_module("sqlalchemy.ext")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:  # pragma: no cover - SQLAlchemy is a dependency
        return
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    try:
        for name, names in ENGINE_NAMES.items():
            module = importlib.import_module(name)
            for attribute in names:
                setattr(package, attribute, getattr(module, attribute))
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    setattr(parent, "asyncio", package)  # noqa: B010 - as the import system does

    def rest(name: str) -> Any:
        """Any other name: run the package's own `__init__` in place, then look again."""
        delattr(package, "__getattr__")
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(package)
        return getattr(package, name)

    setattr(package, "__getattr__", rest)  # noqa: B010 - a module's PEP 562 hook
