"""DRF's content negotiation, with the usual request answered before any parsing."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

JSON = "application/json"
# Accept headers that choose the first renderer when it is JSON, as DRF's own negotiation
# would after parsing them: nothing sent (DRF reads it as */*), */*, or application/json.
PLAIN_ACCEPTS = frozenset({None, "*/*", JSON})


class ContentNegotiation(DefaultContentNegotiation):
    """``DefaultContentNegotiation``, answering the common request without parsing it.

    With no format override (no ``?format=``, no format suffix), a JSON first renderer
    and an Accept header of nothing, ``*/*`` or ``application/json``, DRF's negotiation
    picks that renderer with the media type ``application/json``; this says so at once.
    Every other request (another Accept, quality values, parameters, a 406) goes through
    DRF's own code.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if (format_suffix is None and renderers and renderers[0].media_type == JSON
                and request.META.get("HTTP_ACCEPT") in PLAIN_ACCEPTS
                and not self._format_requested(request)):
            return renderers[0], JSON
        return super().select_renderer(request, renderers, format_suffix)

    def _format_requested(self, request) -> bool:
        param = self.settings.URL_FORMAT_OVERRIDE
        return bool(param and request.META.get("QUERY_STRING") and request.query_params.get(param))
