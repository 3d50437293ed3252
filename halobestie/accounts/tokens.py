"""Issuing JWT pairs (simplejwt) with the user's role as a claim."""

from rest_framework_simplejwt.tokens import RefreshToken


def tokens_for(user) -> dict:
    """A fresh `{access, refresh}` pair for an active user."""
    refresh = RefreshToken.for_user(user)
    refresh["role"] = user.role
    return {"access": str(refresh.access_token), "refresh": str(refresh)}
