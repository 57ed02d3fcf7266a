"""Teacher and student model registry (see :mod:`train.models.registry`)."""

from train.models.registry import UnknownModelError, create_model, list_models, register_model

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model"]
