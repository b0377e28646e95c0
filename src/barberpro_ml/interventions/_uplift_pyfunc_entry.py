"""MLflow "models from code" entry point of :class:`UpliftModel` (logged with every model).

MLflow executes this file when it loads a model logged by :func:`log_uplift`; the learner and
its spec come from the model's artifacts in ``UpliftModel.load_context``.
"""

from mlflow.models import set_model

from barberpro_ml.interventions.model import UpliftModel

set_model(UpliftModel())
