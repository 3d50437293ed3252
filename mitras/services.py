"""Writes on mitras. Every state change of a mitra is one function here."""

from django.db import transaction

from halobestie.accounts.models import Role, User
from halobestie.accounts.phones import normalize_phone
from halobestie.runtime.selectors import get_config
from mitras.models import Mitra


def mitra_create(
    *,
    phone: str,
    password: str,
    display_name: str,
    bio: str = "",
    avatar_url: str = "",
    topics=(),
    languages=("id",),
    gender: str = "unspecified",
    capacity: int | None = None,
) -> Mitra:
    """Create a mitra account (staff only: mitras do not sign up). Raises ValidationError for a
    bad phone; IntegrityError if the phone is taken."""
    phone = normalize_phone(phone)
    with transaction.atomic():
        user = User.objects.create_user(
            phone=phone, password=password, role=Role.MITRA, display_name=display_name
        )
        return Mitra.objects.create(
            user=user,
            display_name=display_name,
            bio=bio,
            avatar_url=avatar_url,
            topics=list(topics),
            languages=list(languages),
            gender=gender,
            capacity=capacity or get_config().default_capacity,
        )
