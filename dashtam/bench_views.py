"""The benchmark baseline: a bare DRF view on the same stack, for the ratios in docs/performance.md.

Routed only when BENCH_ENDPOINTS is on (off by default, production included).
It touches no database and no cache and authenticates nobody, so what it costs
is the WSGI server, the middleware every request meets and DRF itself: the
1.0 against which the authenticated endpoints are compared.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

BaselineResponse = inline_serializer(
    name="BenchBaselineResponse", fields={"status": serializers.CharField()}
)


class BaselineView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="bench_baseline",
        summary="Benchmark baseline (only when BENCH_ENDPOINTS is on)",
        auth=[],
        responses={200: BaselineResponse},
        tags=["benchmarks"],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})
