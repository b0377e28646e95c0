"""barberpro_ml: point-in-time features, models, honest evaluation and gated MLflow promotion
for a barbershop booking marketplace.

Stages, in the order data flows (each imports only from those before it)::

    data -> features -> models -> evaluation -> gates -> registry -> scoring, analytics
"""

from importlib.metadata import PackageNotFoundError, version

from barberpro_ml import data

try:
    __version__ = version("barberpro_ml")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "data"]
