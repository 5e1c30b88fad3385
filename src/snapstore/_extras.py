"""The optional dependencies: imported when first needed, with the extra to install named."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType


def import_extra(module: str, extra: str, needed_for: str) -> ModuleType:
    """``import module``; if it is missing, a ModuleNotFoundError saying what to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name != module.split(".", 1)[0]:
            raise  # the module is there, and something it imports is not
        raise ModuleNotFoundError(
            f"{needed_for} needs {module.split('.', 1)[0]}, which is not installed: "
            f"pip install 'snapstore[{extra}]'",
            name=missing.name,
        ) from None
