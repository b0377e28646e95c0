"""MLflow "models from code" entry point of :class:`PricingModel` (logged with every model).

MLflow executes this file when it loads a model logged by :func:`log_pricing`; the elasticity
table and its spec come from the model's artifacts in ``PricingModel.load_context``.
"""

from mlflow.models import set_model

from barberpro_ml.registry.pricing_model import PricingModel

set_model(PricingModel())
