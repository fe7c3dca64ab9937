"""The admin JSON API under /admin/api (FastAPI, so its OpenAPI schema describes every operation).

It is authenticated by a key of an admin user, and it is the same `Operations` the CLI runs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AfterValidator, BaseModel, Field

from ccgate import validate
from ccgate.alerting import AlertError, AlertOperations
from ccgate.billing.reports import GroupBy, render_csv
from ccgate.errors import GatewayError
from ccgate.gate.keys import KeyRecord
from ccgate.http.admin_docs import add_admin_docs
from ccgate.ops import MAX_OVERDRAFT_USD, MODIFIERS, PRICE_COLUMNS, REPORT_GROUPS, KeyLimits, OperationError, Operations
from ccgate.passwords import password_problem

# Bounds shared with the forms and the CLI (ccgate.validate): what the database and the pages can hold.
Count = Annotated[int, Field(ge=0, le=validate.MAX_COUNT)]
Dollars = Annotated[float, Field(ge=0, le=validate.MAX_USD, allow_inf_nan=False)]
SignedDollars = Annotated[float, Field(ge=-validate.MAX_USD, le=validate.MAX_USD, allow_inf_nan=False)]
Expiry = Annotated[str, AfterValidator(validate.expiry)]
EpochMs = Annotated[int | None, Query(ge=validate.MIN_EPOCH_MS, le=validate.MAX_EPOCH_MS)]


class UserIn(BaseModel):
    email: str
    password: str | None = None
    admin: bool = False
    credit_usd: Dollars | None = Field(default=None, description="prepaid credit; omit for a postpaid user")


class UserPatch(BaseModel):
    disabled: bool | None = None
    overdraft_usd: float | None = Field(default=None, description="how far below zero a prepaid balance may go, "
                                        f"$0 to ${MAX_OVERDRAFT_USD:,}; null: the operator's default")


class ModelPatch(BaseModel):
    prices_usd: dict[str, float] | None = Field(default=None, description="list prices in USD per million tokens, "
                                                f"by column: {', '.join(PRICE_COLUMNS)}")
    markup: float | None = Field(default=None, description="multiplier on list prices, e.g. 1.2")
    enabled: bool | None = None
    modifiers: dict[str, float | None] | None = Field(
        default=None, description=f"price modifiers: {', '.join(MODIFIERS)}; multipliers as numbers such as 1.1, "
        "per-use prices in USD; null removes fast mode or the long-context tier")


class Grant(BaseModel):
    usd: SignedDollars = Field(description="dollars to add; negative to correct")
    note: str | None = None


class KeyLimitsIn(BaseModel):
    rpm: Count | None = None
    concurrency: Count | None = None
    token_budget: Count | None = None
    window: str | None = Field(default=None, description="rolling budget window, e.g. 5h")
    models: list[str] | None = None
    expires: Expiry | None = Field(default=None, description="ISO date or date-time; empty string clears it")
    cache: bool | None = Field(default=None, description="answer identical requests from the response cache")

    def limits(self) -> KeyLimits:
        return KeyLimits(**self.model_dump(include=set(KeyLimitsIn.model_fields)))


class KeyIn(KeyLimitsIn):
    name: str = ""


class KeyPatch(KeyLimitsIn):
    name: str | None = None


class SettingsPatch(BaseModel):
    signup_mode: Literal["open", "invite", "closed"] | None = None
    invite_code: str | None = Field(default=None, description="needed when sign-up is by invite")
    starting_credit_usd: Dollars | None = Field(default=None, description="credit a new sign-up starts with")
    max_rpm: Count | None = Field(default=None, description="cap on users' own keys; 0 clears it")
    max_concurrency: Count | None = Field(default=None, description="cap on users' own keys; 0 clears it")
    max_token_budget: Count | None = Field(default=None, description="cap on users' own keys; 0 clears it")


class CodesIn(BaseModel):
    usd: float = Field(gt=0, le=validate.MAX_USD, allow_inf_nan=False)
    count: int = Field(default=1, ge=1, le=1000)
    note: str | None = None


class AccountIn(BaseModel):
    name: str
    api_key: str
    base_url: str = "https://api.anthropic.com"
    models: list[str] | None = None
    priority: Count = 0
    weight: int = Field(default=1, ge=1, le=validate.MAX_COUNT)
    rpm: Count | None = None
    concurrency: Count | None = None


class AccountPatch(BaseModel):
    enabled: bool | None = None
    api_key: str | None = None
    base_url: str | None = None
    priority: Count | None = None
    weight: int | None = Field(default=None, ge=1, le=validate.MAX_COUNT)
    rpm: Count | None = None
    concurrency: Count | None = None


class WebhookIn(BaseModel):
    name: str
    url: str = Field(description="where alerts are POSTed")
    kind: Literal["generic", "slack"] = Field(default="generic", description="generic: JSON signed with HMAC-SHA256 "
                                              "in X-Ccgate-Signature; slack: a Slack-compatible {text} payload")
    secret: str | None = Field(default=None, description="signing secret of a generic webhook")


class WebhookPatch(BaseModel):
    enabled: bool


def _ops(request: Request) -> Operations:
    return request.app.state.gateway.ops


def admin_key(request: Request) -> KeyRecord:
    """The caller's key, which must belong to an admin user."""
    try:
        key = request.app.state.gateway.authenticate(request.headers)
    except GatewayError as error:
        raise HTTPException(error.status, error.message) from None
    if not key.is_admin:
        raise HTTPException(403, "the admin API needs a key of an admin user")
    return key


def _alerts(request: Request) -> AlertOperations:
    ops = _ops(request)
    return AlertOperations(ops.engine, ops.box)


Ops = Annotated[Operations, Depends(_ops)]
Alerts = Annotated[AlertOperations, Depends(_alerts)]


def create_admin_api() -> FastAPI:
    api = FastAPI(title="ccgate admin API", version="1", dependencies=[Depends(admin_key)],
                  docs_url=None, openapi_url=None, redoc_url=None)
    add_admin_docs(api, mounted_at="/admin/api")

    @api.exception_handler(OperationError)
    async def refused(request: Request, error: OperationError) -> JSONResponse:
        status = 404 if str(error).startswith("no ") else 400
        return JSONResponse({"detail": str(error)}, status_code=status)

    @api.get("/users", summary="List users")
    async def list_users(ops: Ops) -> list[dict]:
        return await ops.users()

    @api.post("/users", status_code=201, summary="Add a user")
    async def add_user(body: UserIn, ops: Ops) -> dict:
        if body.password is not None and (problem := password_problem(body.password, body.email)):
            raise HTTPException(422, problem)
        user_id = await ops.add_user(body.email, password=body.password, admin=body.admin, credit_usd=body.credit_usd)
        return {"id": user_id, "email": body.email.strip().lower()}

    @api.patch("/users/{email}", summary="Disable or enable a user, or set their overdraft")
    async def patch_user(email: str, body: UserPatch, ops: Ops) -> dict:
        if not body.model_fields_set & {"disabled", "overdraft_usd"} or (
                "disabled" in body.model_fields_set and body.disabled is None):
            raise OperationError("nothing to change: give disabled (true or false) or overdraft_usd")
        answer: dict = {"email": email}
        if "overdraft_usd" in body.model_fields_set:
            answer["overdraft_micro"] = await ops.set_overdraft(email, body.overdraft_usd)
        if body.disabled is not None:
            await ops.set_user_disabled(email, body.disabled)
            answer["disabled"] = body.disabled
        return answer

    @api.post("/users/{email}/credit", summary="Grant credit (negative to correct)")
    async def grant(email: str, body: Grant, ops: Ops) -> dict:
        balance = await ops.grant_credit(email, body.usd, body.note)
        return {"email": email, "balance_micro": balance}

    @api.get("/users/{email}/ledger", summary="A user's ledger: grants, redemptions and spend")
    async def ledger(email: str, ops: Ops) -> list[dict]:
        return await ops.ledger(email)

    @api.get("/users/{email}/keys", summary="A user's keys (never their secrets)")
    async def keys(email: str, ops: Ops) -> list[dict]:
        return [{k: v for k, v in key.items() if k != "key_hash"} for key in await ops.list_keys(email)]

    @api.post("/users/{email}/keys", status_code=201, summary="Create a key; the response shows it once")
    async def create_key(email: str, body: KeyIn, ops: Ops) -> dict:
        key = await ops.create_key(email, name=body.name, limits=body.limits())
        return {"id": key.id, "display": key.display, "key": key.plaintext}

    @api.patch("/keys/{key_id}", summary="Change a key's name or limits (0 is unlimited)")
    async def update_key(key_id: str, body: KeyPatch, ops: Ops) -> dict:
        await ops.update_key(key_id, body.limits(), name=body.name)
        return {"id": key_id}

    @api.delete("/keys/{key_id}", summary="Revoke a key")
    async def revoke_key(key_id: str, ops: Ops) -> dict:
        await ops.revoke_key(key_id)
        return {"id": key_id, "revoked": True}

    @api.get("/codes", summary="Redemption codes (never their secrets)")
    async def codes(ops: Ops) -> list[dict]:
        return await ops.codes()

    @api.post("/codes", status_code=201, summary="Create redemption codes; the response shows them once")
    async def create_codes(body: CodesIn, ops: Ops) -> dict:
        return {"codes": await ops.create_codes(body.usd, body.count, body.note)}

    @api.exception_handler(AlertError)
    async def alert_refused(request: Request, error: AlertError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404 if str(error).startswith("no ") else 400)

    @api.get("/alerts/webhooks", summary="Alert webhooks (never their secrets)")
    async def webhooks(alerts: Alerts) -> list[dict]:
        return await alerts.webhooks()

    @api.post("/alerts/webhooks", status_code=201, summary="Add an alert webhook")
    async def add_webhook(body: WebhookIn, alerts: Alerts) -> dict:
        webhook_id = await alerts.add_webhook(body.name, body.url, kind=body.kind, secret=body.secret)
        return {"id": webhook_id, "name": body.name}

    @api.patch("/alerts/webhooks/{name}", summary="Enable or disable an alert webhook")
    async def patch_webhook(name: str, body: WebhookPatch, alerts: Alerts) -> dict:
        await alerts.set_webhook_enabled(name, body.enabled)
        return {"name": name, "enabled": body.enabled}

    @api.delete("/alerts/webhooks/{name}", summary="Remove an alert webhook and its delivery log")
    async def remove_webhook(name: str, alerts: Alerts) -> dict:
        await alerts.remove_webhook(name)
        return {"name": name, "removed": True}

    @api.post("/alerts/test", summary="Send a test alert to every enabled webhook now")
    async def test_alert(alerts: Alerts) -> dict:
        return {"delivered": await alerts.test()}

    @api.get("/alerts/deliveries", summary="The newest alert deliveries, with their outcome")
    async def deliveries(alerts: Alerts, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
        return await alerts.deliveries(limit)

    @api.get("/usage/sessions", summary="Requests, tokens and cost per Claude Code session, user, key and model")
    async def usage_by_session(ops: Ops, alerts: Alerts, email: str | None = None, key_id: str | None = None,
                               since_ms: EpochMs = None, until_ms: EpochMs = None) -> list[dict]:
        user_id = (await ops.user(email))["id"] if email else None
        return await alerts.usage_by_session(user_id=user_id, key_id=key_id, since_ms=since_ms, until_ms=until_ms)

    @api.get("/usage", summary="Requests, tokens and cost per day, model and key")
    async def usage(ops: Ops, email: str | None = None, key_id: str | None = None, model: str | None = None,
                    since_ms: EpochMs = None, until_ms: EpochMs = None) -> list[dict]:
        user_id = (await ops.user(email))["id"] if email else None
        return await ops.usage_summary(user_id=user_id, key_id=key_id, model=model, since_ms=since_ms,
                                       until_ms=until_ms)

    @api.get("/accounts", summary="Upstream accounts (never their credentials)")
    async def accounts(ops: Ops) -> list[dict]:
        return await ops.list_accounts()

    @api.post("/accounts", status_code=201, summary="Add an upstream account")
    async def add_account(body: AccountIn, ops: Ops) -> dict:
        account_id = await ops.add_account(
            body.name, body.api_key, base_url=body.base_url, models=body.models, priority=body.priority,
            weight=body.weight, rpm=body.rpm, concurrency=body.concurrency)
        return {"id": account_id, "name": body.name}

    @api.patch("/accounts/{name}", summary="Enable, disable or change an upstream account")
    async def patch_account(name: str, body: AccountPatch, ops: Ops) -> dict:
        values = body.model_dump(exclude_none=True)
        if not values:
            raise HTTPException(400, "nothing to change: give enabled, api_key, base_url, priority, weight, rpm "
                                     "or concurrency")
        if "enabled" in values:
            values["disabled_reason"] = None if values["enabled"] else "disabled by operator"
        await ops.update_account(name, **values)
        return {"name": name}

    @api.get("/models", summary="The model catalog: list prices, markup, price modifiers, aliases")
    async def models(ops: Ops) -> list[dict]:
        return await ops.models()

    @api.patch("/models/{model_id}", summary="Change a model's prices, markup, price modifiers or availability")
    async def patch_model(model_id: str, body: ModelPatch, ops: Ops) -> dict:
        await ops.update_model(model_id, prices_usd=body.prices_usd, markup=body.markup, enabled=body.enabled,
                               modifiers=body.modifiers)
        return next(model for model in await ops.models() if model["id"] == model_id)

    @api.get("/ledger/check", summary="Whether every balance equals its ledger and every request is debited its "
             "cost exactly once; what is wrong otherwise")
    async def ledger_check(ops: Ops) -> dict:
        check = await ops.ledger_check()
        return {"ok": check.ok, "summary": check.summary(), "balances": check.balances, "debits": check.debits,
                "findings": [asdict(finding) | {"description": finding.describe()} for finding in check.findings]}

    @api.get("/reports", summary="Requests, tokens per class and cost per component by user, key, model, account "
             "(what Anthropic invoices it, at list price), day or Claude Code session", response_model=None)
    async def reports(ops: Ops, by: Annotated[str, Query(description=f"one of {', '.join(REPORT_GROUPS)}")],
                      start: Annotated[str | None, Query(alias="from", description="first day, YYYY-MM-DD")] = None,
                      end: Annotated[str | None, Query(alias="to", description="last day (included)")] = None,
                      format: Literal["json", "csv"] = "json") -> list[dict] | Response:
        rows = await ops.report(by, start, end)
        if format == "csv":
            return PlainTextResponse(render_csv(GroupBy(by), rows), media_type="text/csv",
                                     headers={"content-disposition": f'attachment; filename="ccgate-{by}.csv"'})
        return [asdict(row) for row in rows]

    @api.get("/settings", summary="The dashboard's sign-up policy and the caps on keys users create")
    async def settings(ops: Ops) -> dict:
        return asdict(await ops.web_settings())

    @api.patch("/settings", summary="Change some dashboard settings, leaving the others")
    async def patch_settings(body: SettingsPatch, ops: Ops) -> dict:
        return asdict(await ops.change_web_settings(**body.model_dump(exclude_none=True)))

    return api
