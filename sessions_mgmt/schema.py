"""OpenAPI: document SessionJWTAuthentication as the bearer JWT scheme."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class SessionJWTScheme(SimpleJWTScheme):
    target_class = "sessions_mgmt.authentication.SessionJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        definition = super().get_security_definition(auto_schema)
        definition["description"] = (
            "Access token from login or refresh. It stops working the moment its session is "
            "revoked (401 SESSION_REVOKED)."
        )
        return definition
