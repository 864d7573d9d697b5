"""Cursor pagination: stable under inserts, and no COUNT(*) over big tables."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination as _CursorPagination


class CursorPagination(_CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"

    def decode_cursor(self, request):
        # DRF answers a tampered or stale cursor with 404; it is a bad parameter.
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from None
