"""Cursor pagination: stable under inserts, and no COUNT(*) over big tables."""

import base64
import binascii
import re
from datetime import UTC

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination as _CursorPagination

INVALID_CURSOR = {"cursor": ["Invalid cursor."]}
PAGE_SIZE = re.compile(r"[0-9]{1,4000}")


class CursorPagination(_CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"

    def decode_cursor(self, request):
        # DRF answers a tampered or stale cursor with 404; it is a bad parameter. DRF also
        # reads text that is not base64 at all as an empty cursor (the first page): refused.
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded:
            try:
                base64.b64decode(encoded.encode("ascii"), validate=True)
            except (ValueError, binascii.Error):
                raise ValidationError(INVALID_CURSOR) from None
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(INVALID_CURSOR) from None

    def paginate_queryset(self, queryset, request, view=None):
        # The cursor's position is compared with the first ordering field: a position
        # that is not a value of that field (a tampered cursor) is a 400, not a 500
        # from the database or from the field's own parsing.
        self._check_position(queryset, request, view)
        return super().paginate_queryset(queryset, request, view)

    def _check_position(self, queryset, request, view) -> None:
        if not request.query_params.get(self.cursor_query_param):
            return
        cursor = self.decode_cursor(request)
        if cursor is None or cursor.position is None:
            return
        ordering = self.get_ordering(request, queryset, view)
        name = ordering[0].lstrip("-")
        try:
            field = queryset.model._meta.get_field(name)
        except FieldDoesNotExist:
            return
        try:
            value = field.to_python(cursor.position)
            if value is None:
                raise ValueError("empty position")
            if hasattr(value, "utcoffset") and value.utcoffset() is not None:
                value.astimezone(UTC)  # an offset that pushes the moment outside year 1..9999
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise ValidationError(INVALID_CURSOR) from None

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
