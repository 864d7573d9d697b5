from django.apps import AppConfig


class SessionsMgmtConfig(AppConfig):
    name = "sessions_mgmt"
    verbose_name = "Sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from dashtam.ratelimit.enforcement import register_key_reader
        from sessions_mgmt import checks, revocation, schema  # noqa: F401 - registers checks and the OpenAPI scheme
        from sessions_mgmt.tokens import refresh_session_id

        # The "session" rate-limit key: only this app can verify a refresh token.
        register_key_reader("session", refresh_session_id)

        def forget_cached_user(sender, instance, update_fields=None, **kwargs):
            # The authentication class caches user rows; a saved user is re-read. A login's
            # last_login is no security fact: marking the entry once the save commits is enough.
            last_login_only = update_fields is not None and set(update_fields) <= {"last_login"}
            revocation.user_changed(user_id=instance.pk, at_once=not last_login_only)

        def forget_cached_session(sender, instance, created=False, **kwargs):
            # A session saved outside the services (admin shell, data fix) is re-read.
            # A new one (a login) has nothing cached yet.
            if not created:
                revocation.session_changed(session_id=instance.pk)

        from sessions_mgmt.models import Session

        post_save.connect(forget_cached_session, sender=Session, dispatch_uid="sessions_forget_session_save",
                          weak=False)
        post_delete.connect(forget_cached_session, sender=Session, dispatch_uid="sessions_forget_session_delete",
                            weak=False)
        user_model = get_user_model()
        post_save.connect(forget_cached_user, sender=user_model, dispatch_uid="sessions_forget_user_save", weak=False)
        post_delete.connect(forget_cached_user, sender=user_model, dispatch_uid="sessions_forget_user_delete", weak=False)
