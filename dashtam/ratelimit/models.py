"""No tables: the live state of rate limits is in the cache, not the database.

``LimitedKey`` is an unmanaged model that exists only so the admin can list the
keys that are over their limit right now (``dashtam.ratelimit.admin``).
"""

from django.db import models


class LimitedKey(models.Model):
    key = models.CharField(max_length=255, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "rate-limited key"
        verbose_name_plural = "rate-limited keys (live)"

    def __str__(self) -> str:
        return self.key
