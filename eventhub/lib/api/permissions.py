from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import SAFE_METHODS, BasePermission


class ModelPermission(BasePermission):
    """Reads need the model's view permission, writes its change permission.

    A view names its model with `permission_model`, or through its `queryset`.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        model = getattr(view, "permission_model", None)
        if model is None and getattr(view, "queryset", None) is not None:
            model = view.queryset.model
        if model is None:
            raise ImproperlyConfigured(f"{type(view).__name__} names no permission_model")
        action = "view" if request.method in SAFE_METHODS else "change"
        return user.has_perm(f"{model._meta.app_label}.{action}_{model._meta.model_name}")
