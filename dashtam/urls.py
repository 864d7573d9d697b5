"""URL map. Each app owns its routes; names are what the rate-limit rules match."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from dashtam import health
from dashtam.docs_views import SwaggerUiView, favicon, home
from dashtam.observability.views import metrics

# Django tries the patterns in order until one matches. The literal routes below do not
# overlap, so the order only sets what a request pays to be found: the session routes
# (refresh first) come before the account routes, whose list starts with me and login.
api_v1 = [
    path("auth/", include("sessions_mgmt.urls")),
    path("auth/", include("accounts.urls")),
    path("", include("providers.urls")),
    path("admin/audit/", include("audit.urls")),
]

if settings.BENCH_ENDPOINTS:
    # The benchmark baseline (docs/performance.md); never routed unless enabled. First under
    # api/v1/, so it pays what the cheapest API route pays to be found, not a walk past
    # every other route.
    from dashtam.bench_views import BaselineView

    api_v1.insert(0, path("bench/baseline", BaselineView.as_view(), name="bench-baseline"))

urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerUiView.as_view(url_name="schema"), name="swagger-ui"),
    path("sandbox/", include("providers.sandbox.urls")),
    # The admin's second-factor step (accounts/mfa); its password step is the site's own login/.
    path("admin/mfa/", include("accounts.mfa.admin_urls")),
    path("admin/", admin.site.urls),
]

if settings.ACCOUNT_PAGES_ENABLED:
    urlpatterns.append(path("account/", include("account_pages.urls")))

handler404 = "dashtam.views.not_found"
handler500 = "dashtam.views.server_error"
