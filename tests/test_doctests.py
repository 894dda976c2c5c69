"""Every docstring example in ``geosentry.stream`` and ``geosentry.training`` runs, imported
under its installed name (collecting the source folders directly would import a second copy of
each module as ``stream.*``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest



def _modules() -> list[str]:
    names = ["geosentry"]
    for pkg in ("geosentry.stream", "geosentry.training"):
        mod = importlib.import_module(pkg)
        names.append(pkg)
        names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")
                  if not m.name.endswith("__main__")]
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_one_version() -> None:
    import geosentry.stream
    import geosentry.training
    from importlib.metadata import version

    assert geosentry.stream.__version__ == geosentry.training.__version__ == geosentry.__version__
    assert version("geosentry") == geosentry.__version__
