"""DRF authentication: simplejwt, plus binding the actor to the request context."""

from rest_framework_simplejwt.authentication import JWTAuthentication

from audit import context


class SessionJWTAuthentication(JWTAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            user, token = result
            context.bind_actor(user, token.get("sid"))
        return result
