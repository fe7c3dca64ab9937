"""Types for parsed JSON at the wire boundary: request bodies, stream events, content blocks."""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]
"""A parsed JSON object; its values are checked where they are read, so they stay `Any`."""
