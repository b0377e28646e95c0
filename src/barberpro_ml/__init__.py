"""barberpro_ml: point-in-time features, models, honest evaluation and gated MLflow promotion
for a barbershop booking marketplace.

Stages, in the order data flows (each imports only from those before it)::

    data -> features -> models -> evaluation -> gates -> registry -> jobs
        -> scoring, analytics -> service -> cli
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from barberpro_ml._lazy import attach

# Imported on first use (see barberpro_ml._lazy): a registered model that ships this source
# loads without the data contract's dependencies.
if TYPE_CHECKING:
    from barberpro_ml import data
else:
    __getattr__, __dir__ = attach(__name__, __file__)

try:
    __version__ = version("barberpro_ml")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "data"]
