"""Teacher and student models: the registry (:mod:`train.models.registry`) and the models.

* :mod:`~train.models.teachers` — timm backbones as Sample4Geo-style weight-sharing teachers;
* :mod:`~train.models.students` — the Distill4Geo students (FasterViT variants, timm ones);
* :mod:`~train.models.dual_view` — both views through one shared encoder (teacher training).

Importing this package imports the model modules, which register their models.
"""

# Imported for their @register_model side effect (timm's direction: the package imports the
# model modules, the registry imports none of them).
from train.models import students, teachers  # noqa: F401
from train.models.registry import UnknownModelError, create_model, list_models, register_model

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model"]
