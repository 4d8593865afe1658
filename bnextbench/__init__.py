"""bnextbench: build, count, train and search binary neural networks around BNext.

The names below load on first use, so that the command line starts without importing torch. Using any
of them, or importing ``bnextbench.models``, registers every bnextbench model in timm's registry.
"""

from importlib import import_module

_HOMES = {"BNextSpec": "models", "create_model": "models", "list_models": "models",
          "Complexity": "complexity", "count_model": "complexity", "count_sites": "complexity"}

__all__ = ["BNextSpec", "Complexity", "__version__", "count_model", "count_sites", "create_model", "list_models"]


def __getattr__(name: str):
    if name == "__version__":
        return _version()
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bnextbench")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, "__version__"})
