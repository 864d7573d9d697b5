"""Cursor pagination: stable under inserts, and no COUNT(*) over big tables."""

from rest_framework.pagination import CursorPagination as _CursorPagination


class CursorPagination(_CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"
