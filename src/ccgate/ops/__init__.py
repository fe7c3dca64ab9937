"""Administrative operations: the one implementation behind the CLI, the admin API and the console.

One module per concern; `Operations` joins them. Each change of the configuration goes through
`OperationsBase._changing`, which bumps the configuration version in the same transaction, so every
running server reloads it within its reload interval; with Redis, the change is also announced, and
every server reloads at once.
"""

from ccgate.ops.accounts import STATUS_FRESH_MS, AccountOperations
from ccgate.ops.codes import CodeOperations
from ccgate.ops.common import DEFAULT_BASE_URL, EMAIL, PASSWORD_CHARS, OperationError, check_password, usd_to_micro
from ccgate.ops.credit import CreditOperations
from ccgate.ops.keys import KeyLimits, NewKey, parse_expiry
from ccgate.ops.models import MODIFIERS, PRICE_COLUMNS, ModelOperations
from ccgate.ops.reports import REPORT_GROUPS, LedgerCheck, Overview, ReportOperations, report_span
from ccgate.ops.settings import CAPS, MAX_KEY_NAME_CHARS, SIGNUP_MODES, WebSettings
from ccgate.ops.users import MAX_OVERDRAFT_USD
from ccgate.ops.web_auth import SESSION_MS, Session, WebAuthOperations


class Operations(WebAuthOperations, CreditOperations, CodeOperations, AccountOperations, ModelOperations,
                 ReportOperations):
    """Every operation: users, credit, codes, keys, accounts, settings, web sign-in, models and reports."""


__all__ = [
    "CAPS", "DEFAULT_BASE_URL", "EMAIL", "MAX_KEY_NAME_CHARS", "MAX_OVERDRAFT_USD", "MODIFIERS", "PASSWORD_CHARS",
    "PRICE_COLUMNS", "REPORT_GROUPS", "SESSION_MS", "SIGNUP_MODES", "STATUS_FRESH_MS", "KeyLimits", "LedgerCheck",
    "NewKey", "OperationError", "Operations", "Overview", "Session", "WebSettings", "check_password", "parse_expiry",
    "report_span", "usd_to_micro",
]
