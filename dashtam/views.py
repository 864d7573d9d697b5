"""Django-level error handlers: problem+json under /api/, Django's pages elsewhere."""

from django.views import defaults

from dashtam.api.middleware import is_api
from dashtam.api.problems import problem_response


def not_found(request, exception=None):
    if is_api(request):
        return problem_response(request, code="NOT_FOUND", status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api(request):
        return problem_response(request, code="INTERNAL_ERROR", status=500)
    return defaults.server_error(request)
