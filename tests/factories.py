"""factory_boy factories shared by the test packages."""

from __future__ import annotations

import factory
from django.utils import timezone


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "accounts.User"
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = "Ada"
    last_name = "Lovelace"
    email_verified_at = factory.LazyFunction(timezone.now)
    is_active = True

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):  # factory_boy API
        obj.set_password(extracted or "Correct-Horse-9-Battery")
        if create:
            obj.save(update_fields=["password"])
