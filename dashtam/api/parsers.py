"""The JSON body parser: DRF's, bounded in depth.

Python's json module recurses once per nesting level: a 2 KB body of 1,000 ``[``
raises RecursionError, which DRF does not catch (a 500, with a traceback at ERROR).
A body nested deeper than JSON_MAX_DEPTH is refused as 400 VALIDATION_ERROR
before any view sees it; no request of ours needs more than a few levels.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as _JSONParser

TOO_DEEP = "JSON parse error - the body is nested too deeply."


def _depth_exceeds(data, limit: int) -> bool:
    """Whether ``data`` nests lists/objects more than ``limit`` levels (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class JSONParser(_JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if _depth_exceeds(data, settings.JSON_MAX_DEPTH):
            raise ParseError(TOO_DEEP)
        return data
