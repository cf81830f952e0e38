"""Import MONAI without the optional packages meddap's jobs do not use from it.

MONAI's package `__init__` eagerly imports every submodule, and through them `transformers`
(TransChex) and `torchvision` (whose `ops` import `torch._dynamo`): about 4 of the 7 s that
`import monai` costs a job on one CPU core. meddap uses MONAI's UNets, DynUNet, losses, metrics
and transforms, none of which needs either package. While `monai` itself executes, those two
read as not installed, so MONAI's `optional_import` hands its few users a stub; afterwards they
import normally, so a job that does use them (the classifiers' torchvision) is unaffected. Only a
`monai` that is not yet imported is affected: a process that imported it first keeps its own.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

SKIPPED = ("transformers", "torchvision")


@contextmanager
def absent(names: Sequence[str]) -> Iterator[None]:
    """Within the block, `import name` fails for each of `names` not already imported."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import system: "not found"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


class _LeanLoader(importlib.abc.Loader):
    """MONAI's own loader, executing the package with `SKIPPED` hidden."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with absent(SKIPPED):
            self.loader.exec_module(module)


class LeanMonaiFinder(importlib.abc.MetaPathFinder):
    """Finds `monai` as the other finders do and wraps its loader in `_LeanLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "monai":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _LeanLoader(spec.loader)
        return spec


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(finder, LeanMonaiFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, LeanMonaiFinder())
