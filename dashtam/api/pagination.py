"""Cursor pagination: stable under inserts, and no COUNT(*) over big tables."""

import re

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination as _CursorPagination

PAGE_SIZE = re.compile(r"[0-9]{1,4000}")


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

    def get_page_size(self, request):
        # DRF falls back to the default size for a page_size it cannot read; a bad parameter
        # is a 400 here, as for every other parameter. Sizes above the maximum are capped.
        raw = request.query_params.get(self.page_size_query_param)
        if not raw:  # absent, or empty (?page_size=) as DRF reads every empty query parameter
            return self.page_size
        if not PAGE_SIZE.fullmatch(raw) or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: [
                f"A whole number from 1 (at most {self.max_page_size} are returned)."]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Results per page (default {self.page_size}; at most {self.max_page_size} are returned).")
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = "The opaque cursor from a previous page's next or previous link."
        return parameters
