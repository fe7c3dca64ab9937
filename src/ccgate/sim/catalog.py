"""GET /v1/models and /v1/models/{id} from the reference model table (anthropic-api.md §5.2)."""

from __future__ import annotations

from typing import Any

from ccgate.dialects.models import REFERENCE_MODELS, ModelSpec
from ccgate.sim.errors import invalid
from ccgate.sim.validate import resolve_model

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def model_object(spec: ModelSpec) -> dict[str, Any]:
    """One model as the API lists it."""
    supported = {"supported": True}
    return {
        "type": "model", "id": spec.id, "display_name": spec.display_name, "created_at": spec.created_at,
        "max_input_tokens": spec.max_input_tokens, "max_tokens": spec.max_tokens,
        "capabilities": {
            "batch": supported, "citations": supported, "image_input": supported, "pdf_input": supported,
            "structured_outputs": supported,
            "thinking": {"supported": True, "types": {"enabled": {"supported": not spec.adaptive_thinking_only},
                                                      "adaptive": supported}},
        },
    }


MODEL_OBJECTS = [model_object(spec) for spec in REFERENCE_MODELS]  # newest first
POSITION = {spec.id: i for i, spec in enumerate(REFERENCE_MODELS)}


def get_model(model_id: str) -> dict[str, Any]:
    """One model by id or alias (aliases resolve to the dated id), or 404."""
    return MODEL_OBJECTS[POSITION[resolve_model(model_id).id]]


def _limit(raw: str | None) -> int:
    """The `limit` query parameter, 1..1000, default 20."""
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit: Input should be a valid integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        bound = "greater than or equal to 1" if limit < 1 else f"less than or equal to {MAX_LIMIT}"
        raise invalid(f"limit: Input should be {bound}")
    return limit


def list_models(limit: str | None, after_id: str | None, before_id: str | None) -> dict[str, Any]:
    """A page of models, newest first, with has_more / first_id / last_id."""
    size = _limit(limit)
    if before_id is not None:
        end = POSITION[resolve_model(before_id).id]
        start = max(0, end - size)
        page, has_more = MODEL_OBJECTS[start:end], start > 0
    else:
        start = POSITION[resolve_model(after_id).id] + 1 if after_id is not None else 0
        page, has_more = MODEL_OBJECTS[start:start + size], start + size < len(MODEL_OBJECTS)
    return {"data": page, "has_more": has_more,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
