"""The usage page (charts, cache-hit rates, recent requests) and its CSV export, always of the
signed-in user's own requests whatever the filters say."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ccgate.http.web.charts import Series, bar_chart
from ccgate.http.web.forms import FormError, iso_day
from ccgate.http.web.render import gateway_of, render, usd
from ccgate.http.web.reports import EPOCH, UsageReport, build_report
from ccgate.http.web.sessions import session_of

DEFAULT_DAYS = 30
MAX_DAYS = 366
RECENT_ROWS = 100
CSV_ROWS = 100_000
DAY_MS = 86_400_000
CSV_COLUMNS = ("request_id", "created_at", "key_id", "key_name", "model", "dialect", "status", "error_type",
               "streamed", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
               "cache_write_1h_tokens", "cost_micro", "cost_usd", "latency_ms", "ttft_ms")


@dataclass(frozen=True)
class UsageFilters:
    """Which of the user's requests to show: a key, a model, and a span of whole UTC days."""

    key_id: str | None
    model: str | None
    first: date
    last: date

    def query(self, user_id: int) -> dict:
        """Keyword filters for the usage queries; the user's id is always one of them."""
        return {"user_id": user_id, "key_id": self.key_id, "model": self.model,
                "since_ms": (self.first - EPOCH).days * DAY_MS, "until_ms": ((self.last - EPOCH).days + 1) * DAY_MS}

    def params(self) -> str:
        chosen = {"key": self.key_id, "model": self.model, "from": self.first.isoformat(),
                  "to": self.last.isoformat()}
        return urlencode({name: value for name, value in chosen.items() if value})


def parse_filters(params: QueryParams, today: date) -> UsageFilters:
    last = iso_day(params.get("to", ""), "To") or today
    first = iso_day(params.get("from", ""), "From") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise FormError("the first day comes after the last")
    if (last - first).days >= MAX_DAYS:
        raise FormError(f"a report covers at most {MAX_DAYS} days")
    return UsageFilters(params.get("key") or None, params.get("model") or None, first, last)


def filters_of(request: Request) -> UsageFilters:
    """The filters asked for; the last 30 days, with the reason shown, when they cannot be used."""
    today = datetime.now(UTC).date()
    try:
        return parse_filters(request.query_params, today)
    except FormError as error:
        request.state.error = str(error)
        return parse_filters(QueryParams(), today)


def money(micro: float) -> str:
    return usd(round(micro))


def usage_charts(report: UsageReport) -> dict[str, Markup]:
    days = [when.strftime("%m-%d") for when in report.days]
    tokens = [
        Series("Input", [totals.input_tokens for totals in report.per_day]),
        Series("Output", [totals.output_tokens for totals in report.per_day]),
        Series("Cache read", [totals.cache_read_tokens for totals in report.per_day]),
        Series("Cache write", [totals.cache_write_tokens for totals in report.per_day]),
    ]
    return {
        "tokens": bar_chart("Tokens per day", days, tokens, lambda value: f"{value:,.0f}"),
        "cost": bar_chart("Cost per day", days, [Series("Cost", [t.cost_micro for t in report.per_day])], money),
        "models": bar_chart("Cost per model", list(report.per_model),
                            [Series("Cost", [t.cost_micro for t in report.per_model.values()])], money),
    }


async def usage_page(request: Request) -> Response:
    gateway, user = gateway_of(request), session_of(request).user
    filters = filters_of(request)
    query = filters.query(user["id"])
    report = build_report(await gateway.ops.usage_summary(**query), filters.first, filters.last)
    keys = await gateway.ops.list_keys(user["email"])
    models = sorted({model.id for model in gateway.catalog.models} | set(report.per_model))
    return render(request, "usage.html", title="Usage", filters=filters, report=report, keys=keys, models=models,
                  key_names={key["id"]: key["name"] or key["display"] for key in keys},
                  recent=await gateway.ops.recent_requests(limit=RECENT_ROWS, **query),
                  charts=usage_charts(report))


def cell(value: object) -> object:
    """A CSV value a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


async def usage_csv(request: Request) -> Response:
    gateway, user = gateway_of(request), session_of(request).user
    filters = filters_of(request)
    if error := getattr(request.state, "error", None):
        return PlainTextResponse(error, 400)
    rows = await gateway.ops.recent_requests(limit=CSV_ROWS, **filters.query(user["id"]))
    names = {key["id"]: key["name"] for key in await gateway.ops.list_keys(user["email"])}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        extra = {"created_at": datetime.fromtimestamp(row["created_ms"] / 1000, UTC).isoformat(),
                 "key_name": names.get(row["key_id"], ""), "cost_usd": f"{row['cost_micro'] / 1_000_000:.6f}"}
        writer.writerow([cell(extra[column] if column in extra else row[column]) for column in CSV_COLUMNS])
    filename = f"ccgate-usage-{filters.first}-to-{filters.last}.csv"
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})
