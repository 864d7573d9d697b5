"""Views that exist only in the foundation tests: they exercise the error plumbing."""

from django.db import OperationalError
from django.urls import include, path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from dashtam.urls import urlpatterns as product_urls


class EchoSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    count = serializers.IntegerField(min_value=0)


class EchoView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def post(self, request):
        serializer = EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class CrashView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request):
        raise RuntimeError("secret internals: password=hunter2 at /srv/app.py line 3")


class DeadDatabaseView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request):
        raise OperationalError("could not connect to server: Connection refused")


def plain_crash(request):
    raise ValueError("a crash outside DRF")


test_api = [
    path("echo", EchoView.as_view()),
    path("crash", CrashView.as_view()),
    path("dead-db", DeadDatabaseView.as_view()),
    path("plain-crash", plain_crash),
]

urlpatterns = [path("api/v1/test/", include(test_api)), *product_urls]
