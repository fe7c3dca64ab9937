"""The console's reports page: requests, tokens per class and cost per component by user, key, model,
account, day or Claude Code session over a span of days, and the same as CSV (ops.report)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ccgate.billing.prices import COMPONENTS
from ccgate.billing.reports import COUNTS, GroupBy, ReportRow, render_csv
from ccgate.http.web.render import gateway_of, render
from ccgate.ops import REPORT_GROUPS, OperationError

DEFAULT_DAYS = 30
NANO_PER_MICRO = 1_000


@dataclass(frozen=True)
class ReportQuery:
    """What the page's form asks: group by, first and last day (YYYY-MM-DD, UTC, both included)."""

    by: str
    start: str
    end: str

    @classmethod
    def of(cls, request: Request) -> ReportQuery:
        today = datetime.now(UTC).date()
        params = request.query_params
        return cls(params.get("by") or GroupBy.MODEL.value,
                   params.get("from", (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat()),
                   params.get("to", today.isoformat()))

    def params(self) -> str:
        return urlencode({"by": self.by, "from": self.start, "to": self.end})


def row_view(row: ReportRow) -> dict[str, object]:
    """A report row as the table shows it: counts, then each component's cost in micro-dollars (rounded up)."""
    return {"group": row.group, "requests": row.requests, "counts": [row.counts[name] for name in COUNTS],
            "components": [-(-row.cost_nano[name] // NANO_PER_MICRO) for name in COMPONENTS],
            "cost_micro": row.cost_micro}


async def reports_page(request: Request) -> Response:
    query = ReportQuery.of(request)
    try:
        rows = await gateway_of(request).ops.report(query.by, query.start, query.end)
    except OperationError as error:
        request.state.error, rows = str(error), []
    return render(request, "console_reports.html", title="Reports", query=query, groups=REPORT_GROUPS,
                  counts=[name.removesuffix("_tokens").replace("_", " ") for name in COUNTS],
                  components=[name.replace("_", " ") for name in COMPONENTS], rows=[row_view(row) for row in rows],
                  total_micro=sum(row.cost_micro for row in rows), total_requests=sum(row.requests for row in rows))


async def reports_csv(request: Request) -> Response:
    query = ReportQuery.of(request)
    try:
        rows = await gateway_of(request).ops.report(query.by, query.start, query.end)
    except OperationError as error:
        return PlainTextResponse(str(error), 400)
    filename = f"ccgate-{query.by}-{query.start or 'start'}-to-{query.end or 'now'}.csv"
    return Response(render_csv(GroupBy(query.by), rows), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})
