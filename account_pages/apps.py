from django.apps import AppConfig


class AccountPagesConfig(AppConfig):
    """The account pages: server-rendered templates and one static JS module over the public API."""

    name = "account_pages"
    verbose_name = "Account pages"
