"""MLflow "models from code" entry point of :class:`ForecastModel` (logged with every model).

MLflow executes this file when it loads a model logged by :func:`log_forecast`; the forecast
table and its spec come from the model's artifacts in ``ForecastModel.load_context``.
"""

from mlflow.models import set_model

from barberpro_ml.registry.forecast_model import ForecastModel

set_model(ForecastModel())
