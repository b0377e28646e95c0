"""MLflow "models from code" entry point of :class:`RecommenderModel` (logged with every model).

MLflow executes this file when it loads a model logged by :func:`log_recommender`; the
recommender and its spec come from the model's artifacts in ``RecommenderModel.load_context``.
"""

from mlflow.models import set_model

from barberpro_ml.registry.recs_model import RecommenderModel

set_model(RecommenderModel())
