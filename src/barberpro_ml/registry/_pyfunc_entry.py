"""MLflow "models from code" entry point of :class:`EstimatorModel` (logged with every model).

MLflow executes this file when it loads a model logged by :func:`log_model`; the estimator and
the feature schema come from the model's artifacts in ``EstimatorModel.load_context``.
"""

from mlflow.models import set_model

from barberpro_ml.registry.models import EstimatorModel

set_model(EstimatorModel())
