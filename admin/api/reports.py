"""The admin API's reports: aggregates only (funnel, source quality, bot verdicts per
day) over ``admin/reports.py`` and ``admin/operations.py`` (``reports:read``).
"""

from __future__ import annotations

from typing import Any

from flask import Response

from admin.api import schemas
from admin.api.registry import operation
from admin.api.views import _dump, _query, bp
from admin.permissions import Permission
from leadvault import db

P = Permission


def _window(args: dict[str, Any]) -> Any:
    from admin import reports

    return reports.Window.last_days(
        args["days"], form=args.get("form"), utm_source=args.get("utm_source")
    )


@operation(
    bp,
    "GET",
    "/reports/funnel",
    summary="The funnel new → MQL → SAL → SQL → won of the leads of the last days",
    permission=P.REPORTS_READ,
    query=schemas.ReportQuerySchema,
    response=schemas.FunnelSchema,
    tag="reports",
)
def report_funnel() -> Response:
    from admin import reports

    args = _query(schemas.ReportQuerySchema)
    result = reports.funnel(db.session(), _window(args))
    return _dump(
        schemas.FunnelSchema,
        {"days": args["days"], "steps": result.steps, "current": dict(result.current)},
    )


@operation(
    bp,
    "GET",
    "/reports/sources",
    summary="Lead quality per first-touch source, campaign or form (the biggest 50)",
    permission=P.REPORTS_READ,
    query=schemas.SourcesQuerySchema,
    response=schemas.SourceQualitySchema,
    many=True,
    tag="reports",
)
def report_sources() -> Response:
    from admin import reports

    args = _query(schemas.SourcesQuerySchema)
    rows = reports.sources(db.session(), _window(args), by=args["by"])
    return _dump(schemas.SourceQualitySchema, rows, many=True)


@operation(
    bp,
    "GET",
    "/reports/bots",
    summary="Bot verdicts per UTC day",
    permission=P.REPORTS_READ,
    query=schemas.BotsQuerySchema,
    response=schemas.BotDaySchema,
    many=True,
    tag="reports",
)
def report_bots() -> Response:
    from admin import operations

    args = _query(schemas.BotsQuerySchema)
    days = operations.bot_days(db.session(), days=args["days"])
    return _dump(schemas.BotDaySchema, days, many=True)
