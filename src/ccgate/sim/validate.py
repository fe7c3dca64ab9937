"""Request validation with Anthropic's wording where it is known (anthropic-api.md §1, §5.1, §11).

Messages follow the API's pydantic style, `loc: message`.  Wording the reference does not give
(whitespace stop sequences, max_tokens 0 misuse, unknown tool_choice name) is the simulator's own.
"""

from __future__ import annotations

import re
from itertools import takewhile
from typing import Any

from ccgate.dialects.models import ModelSpec, reference_by_name
from ccgate.sim.errors import ApiError, invalid

MODELS = reference_by_name()
TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,128}$"
TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
ROLES = ("user", "assistant", "system")
TOOL_CHOICES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "disabled", "adaptive")
COUNT_TOKENS_REJECTED = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata")
INTERLEAVED_THINKING_BETA = "interleaved-thinking-2025-05-14"
MIN_THINKING_BUDGET = 1024
BUDGET_MESSAGE = (
    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
)
_LABELS = {str: "string", int: "integer", list: "list", dict: "dictionary", bool: "boolean"}


def _expect(value: Any, kind: type | tuple[type, ...], loc: str) -> None:
    """Raise pydantic's 'Input should be a valid X' unless value is of kind (bools are not numbers)."""
    if isinstance(value, bool) and kind is not bool:
        ok = False
    else:
        ok = isinstance(value, kind)
    if not ok:
        label = "number" if isinstance(kind, tuple) else _LABELS[kind]
        raise invalid(f"{loc}: Input should be a valid {label}")


def _required(body: dict[str, Any], field: str) -> Any:
    """The field's value, or 400 `field: Field required`."""
    if field not in body:
        raise invalid(f"{field}: Field required")
    return body[field]


def resolve_model(name: Any) -> ModelSpec:
    """The reference model for an id or alias, or 404 `model: <id>`."""
    spec = MODELS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ApiError(404, f"model: {name}")
    return spec


def _model_name(body: Any) -> str:
    """The body must be a JSON object with a string `model`; returns it."""
    _expect(body, dict, "body")
    model = _required(body, "model")
    _expect(model, str, "model")
    return model


def validate_messages(body: Any, betas: frozenset[str]) -> ModelSpec:
    """Check a POST /v1/messages body; returns the resolved model."""
    model = _model_name(body)
    max_tokens = _required(body, "max_tokens")
    _expect(max_tokens, int, "max_tokens")
    _check_messages(_required(body, "messages"))
    spec = resolve_model(model)
    if max_tokens < 0:
        raise invalid("max_tokens: Input should be greater than or equal to 0")
    if max_tokens > spec.max_tokens:
        raise invalid(f"max_tokens: {max_tokens} > {spec.max_tokens}, which is the maximum allowed number of "
                      f"output tokens for {spec.id}")
    _check_common(body)
    if "stream" in body:
        _expect(body["stream"], bool, "stream")
    _check_sampling(body)
    _check_stop_sequences(body.get("stop_sequences"))
    _check_metadata(body.get("metadata"))
    _check_thinking(body, spec, max_tokens, INTERLEAVED_THINKING_BETA in betas and bool(body.get("tools")))
    if max_tokens == 0 and (body.get("stream") or _thinking_type(body) == "enabled" or _forced_tool(body)):
        raise invalid("max_tokens: 0 (cache pre-warming) cannot be combined with `stream`, enabled thinking "
                      "or forced tool use")
    return spec


def validate_count_tokens(body: Any) -> ModelSpec:
    """Check a POST /v1/messages/count_tokens body; returns the resolved model."""
    model = _model_name(body)
    for field in COUNT_TOKENS_REJECTED:
        if field in body:
            raise invalid(f"{field}: Extra inputs are not permitted")
    _check_messages(_required(body, "messages"))
    spec = resolve_model(model)
    _check_common(body)
    _check_thinking(body, spec, None, False)
    return spec


def _check_common(body: dict[str, Any]) -> None:
    """What both endpoints check: system, tools, tool_choice."""
    _check_system(body.get("system"))
    names = _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"), names)


def _check_messages(messages: Any) -> None:
    """Shape of every message and block, then tool_use / tool_result pairing."""
    _expect(messages, list, "messages")
    if not messages:
        raise invalid("messages: at least one message is required")
    last = len(messages) - 1
    for i, message in enumerate(messages):
        loc = f"messages.{i}"
        _expect(message, dict, loc)
        if message.get("role") not in ROLES:
            raise invalid(f"{loc}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"{loc}.content: Field required")
        content = message["content"]
        if not isinstance(content, str):
            _check_blocks(content, f"{loc}.content", "messages")
        if not content and not (i == last and message["role"] == "assistant"):
            raise invalid(f"{loc}: all messages must have non-empty content except for the optional final "
                          "assistant message")
    _check_tool_pairs(messages)


def _check_blocks(blocks: Any, loc: str, root: str) -> None:
    """Shape of a list of content blocks (message content or tool_result content)."""
    _expect(blocks, list, loc)
    for j, block in enumerate(blocks):
        bloc = f"{loc}.{j}"
        _expect(block, dict, bloc)
        kind = block.get("type")
        if not isinstance(kind, str):
            raise invalid(f"{bloc}: Unable to extract tag using discriminator 'type'")
        if kind == "text":
            if "text" not in block:
                raise invalid(f"{bloc}.text.text: Field required")
            _expect(block["text"], str, f"{bloc}.text.text")
            if not block["text"]:
                raise invalid(f"{root}: text content blocks must be non-empty")
        elif kind == "image":
            _check_image(block.get("source"), f"{bloc}.image.source")
        elif kind == "tool_use":
            for field, kind_ in (("id", str), ("name", str), ("input", dict)):
                if field not in block:
                    raise invalid(f"{bloc}.tool_use.{field}: Field required")
                _expect(block[field], kind_, f"{bloc}.tool_use.{field}")
        elif kind == "tool_result":
            if "tool_use_id" not in block:
                raise invalid(f"{bloc}.tool_result.tool_use_id: Field required")
            _expect(block["tool_use_id"], str, f"{bloc}.tool_result.tool_use_id")
            content = block.get("content", "")
            if not isinstance(content, str):
                _check_blocks(content, f"{bloc}.tool_result.content", root)


def _check_image(source: Any, loc: str) -> None:
    """An image source: base64 with a supported media type, a url, or a file id."""
    if not isinstance(source, dict):
        raise invalid(f"{loc}: Field required" if source is None else f"{loc}: Input should be a valid dictionary")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_MEDIA_TYPES:
            raise invalid(f"{loc}.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' "
                          "or 'image/webp'")
        _expect(source.get("data"), str, f"{loc}.base64.data")
    elif kind == "url":
        _expect(source.get("url"), str, f"{loc}.url.url")
    elif kind != "file":
        raise invalid(f"{loc}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      "'base64', 'url', 'file'")


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[tuple[int, int, dict[str, Any]]]]]:
    """Consecutive same-role messages merged, as the API merges them: [(role, [(i, j, block)])]."""
    turns: list[tuple[str, list[tuple[int, int, dict[str, Any]]]]] = []
    for i, message in enumerate(messages):
        content = message["content"]
        blocks = [(i, j, block) for j, block in enumerate(content)] if isinstance(content, list) \
            else [(i, 0, {"type": "text"})]
        if turns and turns[-1][0] == message["role"]:
            turns[-1][1].extend(blocks)
        else:
            turns.append((message["role"], blocks))
    return turns


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Every tool_use is answered first thing in the next user turn; every tool_result answers one."""
    pending: list[str] = []
    pending_at = 0
    for role, blocks in _turns(messages):
        if role == "assistant":
            uses = [(i, block["id"]) for i, _, block in blocks if block.get("type") == "tool_use"]
            pending = [tool_id for _, tool_id in uses]
            pending_at = uses[0][0] if uses else 0
            continue
        for i, j, block in blocks:
            if block.get("type") == "tool_result" and block["tool_use_id"] not in pending:
                raise invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                              f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                              "`tool_use` block in the previous message.")
        leading = takewhile(lambda item: item[2].get("type") == "tool_result", blocks)
        answered = {block["tool_use_id"] for _, _, block in leading}
        _raise_unanswered([tool_id for tool_id in pending if tool_id not in answered], pending_at)
        pending = []
    _raise_unanswered(pending, pending_at)


def _raise_unanswered(missing: list[str], at: int) -> None:
    """400 for tool_use ids with no tool_result right after them."""
    if missing:
        raise invalid(f"messages.{at}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                      f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                      "in the next message.")


def _check_system(system: Any) -> None:
    """A string or a list of non-empty text blocks."""
    if system is None or isinstance(system, str):
        return
    _expect(system, list, "system")
    for j, block in enumerate(system):
        _expect(block, dict, f"system.{j}")
        if block.get("type") != "text":
            raise invalid(f"system.{j}.type: Input should be 'text'")
        _expect(block.get("text"), str, f"system.{j}.text")
        if not block["text"]:
            raise invalid("system: text content blocks must be non-empty")


def _check_tools(tools: Any) -> set[str]:
    """Custom tools need a valid name and an input_schema; names are unique.  Returns the names."""
    if tools is None:
        return set()
    _expect(tools, list, "tools")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        _expect(tool, dict, f"tools.{i}")
        name = tool.get("name")
        if tool.get("type", "custom") == "custom":
            if name is None:
                raise invalid(f"tools.{i}.custom.name: Field required")
            if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
                raise invalid(f"tools.{i}.custom.name: String should match pattern '{TOOL_NAME_PATTERN}'")
            if "input_schema" not in tool:
                raise invalid(f"tools.{i}.custom.input_schema: Field required")
            _expect(tool["input_schema"], dict, f"tools.{i}.custom.input_schema")
        if name in names:
            raise invalid("tools: Tool names must be unique.")
        if isinstance(name, str):
            names.add(name)
    return names


def _check_tool_choice(choice: Any, names: set[str]) -> None:
    """A known type; `tool` names one of the tools."""
    if choice is None:
        return
    _expect(choice, dict, "tool_choice")
    kind = choice.get("type")
    if kind not in TOOL_CHOICES:
        raise invalid(f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      "'auto', 'any', 'tool', 'none'")
    if kind == "tool":
        name = choice.get("name")
        if name is None:
            raise invalid("tool_choice.tool.name: Field required")
        if name not in names:
            raise invalid(f"tool_choice.tool.name: no tool named '{name}' was provided in `tools`")


def _check_sampling(body: dict[str, Any]) -> None:
    """temperature and top_p in [0, 1] and not both; top_k a non-negative integer."""
    for field in ("temperature", "top_p"):
        value = body.get(field)
        if value is not None:
            _expect(value, (int, float), field)
            if not 0 <= value <= 1:
                bound = "greater than or equal to 0" if value < 0 else "less than or equal to 1"
                raise invalid(f"{field}: Input should be {bound}")
    if body.get("temperature") is not None and body.get("top_p") is not None:
        raise invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    top_k = body.get("top_k")
    if top_k is not None:
        _expect(top_k, int, "top_k")
        if top_k < 0:
            raise invalid("top_k: Input should be greater than or equal to 0")


def _check_stop_sequences(sequences: Any) -> None:
    """A list of strings, none of them whitespace only."""
    if sequences is None:
        return
    _expect(sequences, list, "stop_sequences")
    for i, sequence in enumerate(sequences):
        _expect(sequence, str, f"stop_sequences.{i}")
        if not sequence.strip():
            raise invalid("stop_sequences: each stop sequence must contain non-whitespace characters")


def _check_metadata(metadata: Any) -> None:
    """`{user_id?: string}` and nothing else."""
    if metadata is None:
        return
    _expect(metadata, dict, "metadata")
    for key, value in metadata.items():
        if key != "user_id":
            raise invalid(f"metadata.{key}: Extra inputs are not permitted")
        if value is not None:
            _expect(value, str, "metadata.user_id")


def _thinking_type(body: dict[str, Any]) -> str | None:
    """thinking.type, or None when thinking is absent."""
    thinking = body.get("thinking")
    return thinking.get("type") if isinstance(thinking, dict) else None


def _forced_tool(body: dict[str, Any]) -> bool:
    """Whether tool_choice forces a tool call (`any` or `tool`)."""
    choice = body.get("tool_choice")
    return isinstance(choice, dict) and choice.get("type") in ("any", "tool")


def _check_thinking(body: dict[str, Any], spec: ModelSpec, max_tokens: int | None, interleaved: bool) -> None:
    """Thinking type, budget and the features it excludes (§1.2)."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    _expect(thinking, dict, "thinking")
    kind = thinking.get("type")
    if kind not in THINKING_TYPES:
        raise invalid(f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                      "'enabled', 'disabled', 'adaptive'")
    if kind == "disabled":
        return
    if kind == "enabled":
        if spec.adaptive_thinking_only:
            raise invalid("thinking.type.enabled is not supported for this model. Use thinking.type.adaptive and "
                          "output_config.effort to control thinking behavior.")
        if "budget_tokens" not in thinking:
            raise invalid("thinking.enabled.budget_tokens: Field required")
        budget = thinking["budget_tokens"]
        _expect(budget, int, "thinking.enabled.budget_tokens")
        if budget < MIN_THINKING_BUDGET:
            raise invalid(f"thinking.enabled.budget_tokens: Input should be greater than or equal to "
                          f"{MIN_THINKING_BUDGET}")
        if max_tokens is not None and budget >= max_tokens and not interleaved:
            raise invalid(BUDGET_MESSAGE)
    if _forced_tool(body):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    if body.get("temperature") not in (None, 1):
        raise invalid("temperature may only be set to 1 when thinking is enabled")
