"""Per-key token buckets behind the anthropic-ratelimit-* headers and the simulator's RPM limit (§4.3)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ccgate.sim.errors import ApiError

WINDOW_SECONDS = 60.0
DEFAULT_REQUESTS_PER_MINUTE = 4_000
INPUT_TOKENS_PER_MINUTE = 2_000_000
OUTPUT_TOKENS_PER_MINUTE = 400_000
RPM_MESSAGE = ("This request would exceed your organization's rate limit of {limit} requests per minute. "
               "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
               "headers for current usage. Please try again later.")


@dataclass(slots=True)
class Bucket:
    """A bucket of `capacity` that refills completely in one minute, continuously."""

    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add what flowed in since the last look."""
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / WINDOW_SECONDS)
        self.stamp = now

    def seconds_to(self, level: float) -> float:
        """How long until the bucket holds `level`."""
        return max(0.0, (level - self.level) * WINDOW_SECONDS / self.capacity)


def _rfc3339(timestamp: float) -> str:
    """`2025-08-21T12:40:59Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class RateLimiter:
    """Request, input-token and output-token buckets per upstream API key."""

    def __init__(self, rpm_limit: int) -> None:
        self.rpm_limit = rpm_limit
        self._buckets: dict[str, tuple[Bucket, Bucket, Bucket]] = {}

    def _for(self, api_key: str, now: float) -> tuple[Bucket, Bucket, Bucket]:
        """The key's (requests, input, output) buckets, refilled to `now`."""
        buckets = self._buckets.get(api_key)
        if buckets is None:
            rpm = float(self.rpm_limit or DEFAULT_REQUESTS_PER_MINUTE)
            buckets = (Bucket(rpm, rpm, now), Bucket(INPUT_TOKENS_PER_MINUTE, INPUT_TOKENS_PER_MINUTE, now),
                       Bucket(OUTPUT_TOKENS_PER_MINUTE, OUTPUT_TOKENS_PER_MINUTE, now))
            self._buckets[api_key] = buckets
        for bucket in buckets:
            bucket.refill(now)
        return buckets

    def admit(self, api_key: str, now: float) -> None:
        """Take one request from the key's bucket, or raise 429 when rpm_limit is set and it is empty."""
        requests = self._for(api_key, now)[0]
        if self.rpm_limit and requests.level < 1:
            raise ApiError(429, RPM_MESSAGE.format(limit=self.rpm_limit), self.headers(api_key, now) | {
                "retry-after": str(math.ceil(requests.seconds_to(1))), "x-should-retry": "true"})
        requests.level = max(0.0, requests.level - 1)

    def spend(self, api_key: str, now: float, input_tokens: int, output_tokens: int) -> None:
        """Take a response's tokens (input counts uncached plus cache writes, §4.3)."""
        _, inputs, outputs = self._for(api_key, now)
        inputs.level = max(0.0, inputs.level - input_tokens)
        outputs.level = max(0.0, outputs.level - output_tokens)

    def headers(self, api_key: str, now: float) -> dict[str, str]:
        """The anthropic-ratelimit-* headers for the key."""
        requests, inputs, outputs = self._for(api_key, now)
        tightest = min(inputs, outputs, key=lambda bucket: bucket.level / bucket.capacity)
        headers: dict[str, str] = {}
        for name, bucket, remaining in (
            ("requests", requests, math.floor(requests.level)),
            ("tokens", tightest, round(tightest.level, -3)),
            ("input-tokens", inputs, math.floor(inputs.level)),
            ("output-tokens", outputs, math.floor(outputs.level)),
        ):
            prefix = f"anthropic-ratelimit-{name}-"
            headers[prefix + "limit"] = str(int(bucket.capacity))
            headers[prefix + "remaining"] = str(int(remaining))
            headers[prefix + "reset"] = _rfc3339(now + bucket.seconds_to(bucket.capacity))
        return headers
