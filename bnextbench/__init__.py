"""bnextbench: build, count, train and search binary neural networks around BNext.

Importing the package registers every bnextbench model in timm's registry.
"""

from importlib.metadata import PackageNotFoundError, version

from .complexity import Complexity, count_model, count_sites
from .models import BNextSpec, create_model, list_models

try:
    __version__ = version("bnextbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["BNextSpec", "Complexity", "__version__", "count_model", "count_sites", "create_model", "list_models"]
