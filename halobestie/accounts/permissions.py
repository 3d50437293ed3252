"""Role checks for DRF views. The role is a JWT claim and the user's column; both must agree
(accounts.authentication checks that), and every endpoint names the role it serves."""

from rest_framework.permissions import BasePermission

from halobestie.accounts.models import Role


class IsClient(BasePermission):
    message = "Hanya untuk akun klien."
    code = "role_not_allowed"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.role == Role.CLIENT)


class IsMitra(BasePermission):
    message = "Hanya untuk akun mitra."
    code = "role_not_allowed"

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.role == Role.MITRA and hasattr(user, "mitra"))


class IsClientOrMitra(BasePermission):
    message = "Hanya untuk akun klien atau mitra."
    code = "role_not_allowed"

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.role in (Role.CLIENT, Role.MITRA))
