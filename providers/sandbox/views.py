"""A tiny OAuth 2 + Trader API server with demo data, speaking Schwab's protocol.

Enabled only when SANDBOX_PROVIDER_ENABLED (never in production by default).
Stateless: codes and tokens are signed with the secret key (codes are also
single-use through the cache), so every process of the app serves the same
sandbox. Access tokens live SANDBOX_ACCESS_TOKEN_SECONDS, so a newcomer sees a
refresh within minutes; refresh tokens rotate on every refresh.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from providers.clients.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

CODE_SECONDS = 600
REFRESH_SECONDS = 7 * 24 * 3600
TYPES = ["TRADE", "DIVIDEND_OR_INTEREST", "ACH_RECEIPT", "TRADE", "CASH_DISBURSEMENT"]
SYMBOLS = ["AAPL", "MSFT", "VTI", "NVDA", "BND"]


def _enabled():
    if not settings.SANDBOX_PROVIDER_ENABLED:
        raise Http404("The sandbox provider is disabled.")


def _oauth_error(error: str, status: int, description: str = "") -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=status)


@require_GET
def authorize(request):
    """The consent page: shows Approve and Deny; both go back to the redirect URI."""
    _enabled()
    q = request.GET
    if q.get("client_id") != SANDBOX_CLIENT_ID or q.get("redirect_uri") != settings.SANDBOX_REDIRECT_URI:
        return HttpResponse("Unknown client or redirect URI.", status=400, content_type="text/plain")
    if q.get("response_type") != "code" or not q.get("state"):
        return HttpResponse("response_type=code and state are required.", status=400,
                            content_type="text/plain")
    decision = q.get("decision")
    if decision == "deny":
        return HttpResponseRedirect(f"{q['redirect_uri']}?{urlencode({'error': 'access_denied', 'state': q['state']})}")
    if decision == "approve":
        code = signing.dumps({
            "sub": q.get("login_hint") or secrets.token_hex(8),
            "redirect_uri": q["redirect_uri"],
            "challenge": q.get("code_challenge", ""),
            "nonce": secrets.token_hex(8),
        }, salt="dashtam.sandbox.code")
        return HttpResponseRedirect(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")
    base = request.get_full_path()
    page = (
        "<!doctype html><title>Sandbox broker</title><body style='font-family:sans-serif'>"
        "<h1>Sandbox broker</h1><p>Dashtam asks to read your (demo) accounts and transactions.</p>"
        f"<p><a href='{escape(base)}&amp;decision=approve'>Approve</a> &nbsp; "
        f"<a href='{escape(base)}&amp;decision=deny'>Deny</a></p></body>"
    )
    return HttpResponse(page)


def _client_ok(request) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Basic "):
        return False
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(client_id, SANDBOX_CLIENT_ID) and hmac.compare_digest(secret, SANDBOX_CLIENT_SECRET)


def _issue(sub: str) -> dict:
    now = int(timezone.now().timestamp())
    access = signing.dumps({"sub": sub, "iat": now, "n": secrets.token_hex(4)}, salt="dashtam.sandbox.access")
    refresh = signing.dumps({"sub": sub, "iat": now, "n": secrets.token_hex(4)}, salt="dashtam.sandbox.refresh")
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
            "expires_in": settings.SANDBOX_ACCESS_TOKEN_SECONDS, "scope": "api"}


@csrf_exempt
@never_cache  # tokens: Cache-Control no-store (RFC 6749, 5.1)
@require_POST
def token(request):
    _enabled()
    if not _client_ok(request):
        return _oauth_error("invalid_client", 401)
    grant = request.POST.get("grant_type")
    if grant == "authorization_code":
        try:
            code = signing.loads(request.POST.get("code", ""), salt="dashtam.sandbox.code", max_age=CODE_SECONDS)
        except signing.BadSignature:
            return _oauth_error("invalid_grant", 400, "unknown or expired code")
        if code["redirect_uri"] != request.POST.get("redirect_uri"):
            return _oauth_error("invalid_grant", 400, "redirect_uri mismatch")
        if code["challenge"]:
            verifier = request.POST.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if not hmac.compare_digest(digest, code["challenge"]):
                return _oauth_error("invalid_grant", 400, "PKCE verification failed")
        used_key = "sandbox:code:" + hashlib.sha256(request.POST["code"].encode()).hexdigest()
        if not cache.add(used_key, 1, timeout=CODE_SECONDS):
            return _oauth_error("invalid_grant", 400, "code already used")
        body = _issue(code["sub"])
        body["refresh_token_expires_in"] = REFRESH_SECONDS
        return JsonResponse(body)
    if grant == "refresh_token":
        try:
            data = signing.loads(request.POST.get("refresh_token", ""), salt="dashtam.sandbox.refresh",
                                 max_age=REFRESH_SECONDS)
        except signing.BadSignature:
            return _oauth_error("invalid_grant", 400, "unknown or expired refresh token")
        return JsonResponse(_issue(data["sub"]))
    return _oauth_error("unsupported_grant_type", 400)


def _subject(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer "):
        return None
    try:
        return signing.loads(header[7:], salt="dashtam.sandbox.access",
                             max_age=settings.SANDBOX_ACCESS_TOKEN_SECONDS + 30)["sub"]
    except signing.BadSignature:
        return None


def _accounts(sub: str) -> list[dict]:
    seed = hashlib.sha256(sub.encode()).hexdigest()
    out = []
    for i, kind in enumerate(("MARGIN", "CASH")):
        number = str(int(seed[i * 8:(i + 1) * 8], 16))[-8:].rjust(8, "1")
        out.append({"number": number, "hash": hashlib.sha256(f"{seed}{i}".encode()).hexdigest()[:32].upper(),
                    "type": kind, "i": i})
    return out


def _unauthorized():
    return JsonResponse({"message": "Client not authorized", "errors": ["invalid or expired token"]},
                        status=401)


@require_GET
def account_numbers(request):
    _enabled()
    sub = _subject(request)
    if sub is None:
        return _unauthorized()
    return JsonResponse([{"accountNumber": a["number"], "hashValue": a["hash"]} for a in _accounts(sub)],
                        safe=False)


@require_GET
def accounts(request):
    _enabled()
    sub = _subject(request)
    if sub is None:
        return _unauthorized()
    data = []
    for a in _accounts(sub):
        positions = []
        if request.GET.get("fields") == "positions":
            for j, symbol in enumerate(SYMBOLS[a["i"]::2]):
                qty = Decimal(10 * (j + 1))
                price = Decimal(100 + 37 * j)
                positions.append({"longQuantity": float(qty), "shortQuantity": 0.0,
                                  "averagePrice": float(price - 5), "marketValue": float(qty * price),
                                  "instrument": {"symbol": symbol, "assetType": "EQUITY"}})
        market = sum(Decimal(str(p["marketValue"])) for p in positions)
        cash = Decimal("2500.00") * (a["i"] + 1)
        data.append({"securitiesAccount": {
            "type": a["type"], "accountNumber": a["number"], "positions": positions,
            "currentBalances": {"cashBalance": float(cash), "longMarketValue": float(market),
                                "liquidationValue": float(cash + market)},
        }})
    return JsonResponse(data, safe=False)


def _day(d: datetime) -> int:
    return int(d.timestamp() // 86400)


# Like Schwab's API: at most one year per request, dates with an explicit offset, not before 1970.
MAX_TRANSACTION_SPAN = timedelta(days=366)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _bad_window(request, field: str, message: str) -> HttpResponse:
    """400 problem+json naming the parameter; ``message`` also in Schwab's own field of that name."""
    from dashtam.api.problems import problem_response

    response = problem_response(request, code="VALIDATION_ERROR", detail=f"{field}: {message}",
                                errors={field: [message]})
    body = json.loads(response.content)
    body["message"] = f"{field}: {message}"
    response.content = json.dumps(body)
    return response


def _transaction_window(request):
    """(start, end, None) for a sane window, else (None, None, a 400 naming the parameter)."""
    found = {}
    for field in ("startDate", "endDate"):
        raw = request.GET.get(field, "")
        if not raw:
            return None, None, _bad_window(request, field, "is required (ISO 8601 date-time with an offset).")
        try:
            moment = parse_datetime(raw)
        except ValueError:  # well formed but impossible, such as February 30th
            moment = None
        if moment is None:
            return None, None, _bad_window(request, field, "is not a valid ISO 8601 date-time.")
        if timezone.is_naive(moment):
            return None, None, _bad_window(request, field, "needs a UTC offset, e.g. 2024-01-31T00:00:00Z.")
        try:
            if moment < EPOCH:
                return None, None, _bad_window(request, field, "must not be before 1970-01-01.")
        except OverflowError:  # an offset that moves year 1 or 9999 out of range
            return None, None, _bad_window(request, field, "is out of range.")
        found[field] = moment
    start, end = found["startDate"], found["endDate"]
    if end < start:
        return None, None, _bad_window(request, "endDate", "must not be before startDate.")
    if end - start > MAX_TRANSACTION_SPAN:
        return None, None, _bad_window(request, "endDate", "must be within one year of startDate.")
    return start, end, None


@require_GET
def transactions(request, account_hash: str):
    _enabled()
    sub = _subject(request)
    if sub is None:
        return _unauthorized()
    account = next((a for a in _accounts(sub) if a["hash"] == account_hash), None)
    if account is None:
        return JsonResponse({"message": "Account not found"}, status=404)
    start, end, problem = _transaction_window(request)
    if problem is not None:
        return problem
    wanted = {t for t in request.GET.get("types", "").split(",") if t}
    rows = []
    for day in range(_day(start), _day(end) + 1):
        if (day + account["i"]) % 3:
            continue
        kind = TYPES[day % len(TYPES)]
        if wanted and kind not in wanted:
            continue
        when = datetime.fromtimestamp(day * 86400 + 15 * 3600, tz=UTC)
        if not (start <= when <= end):
            continue
        symbol = SYMBOLS[day % len(SYMBOLS)]
        amount = Decimal((day % 17) * 25 + 10) * (-1 if kind in ("TRADE", "CASH_DISBURSEMENT") else 1)
        rows.append({
            "activityId": int(f"{account['i'] + 1}{day}"), "time": when.isoformat(), "type": kind,
            "status": "VALID", "description": f"{kind.replace('_', ' ').title()} {symbol}",
            "netAmount": float(amount),
            "transferItems": [{"instrument": {"symbol": symbol, "assetType": "EQUITY"}, "amount": 1}],
        })
    return JsonResponse(rows, safe=False)




@require_GET
def oauth_result(request):
    """Where the OAuth callback lands in development, when FRONTEND_URL is this app.

    A stand-in for the front end's landing page: the callback hands it ``provider``,
    ``state`` and ``code`` (or ``error``), and the signed-in user completes the flow with
    ``POST /api/v1/providers/oauth/{provider}/complete``. With no front end here, the page
    shows that request's body, ready to paste into /api/docs. The page carries a live code:
    no-store, and no Referer leaves it.
    """
    _enabled()
    q = request.GET
    provider = q.get("provider", "")[:32]
    body = {"state": q.get("state", "")[:512]}
    if q.get("error"):
        body["error"] = q["error"][:128]
    else:
        body["code"] = q.get("code", "")[:4096]
    path = f"/api/v1/providers/oauth/{provider or '{provider_key}'}/complete"
    page = (
        "<!doctype html><title>Dashtam: finish connecting</title>"
        "<link rel='icon' href='data:,'><body style='font-family:sans-serif'>"
        f"<h1>Finish connecting {escape(provider or 'the provider')}</h1>"
        + ("<p>The provider reports: <strong>" + escape(body["error"]) + "</strong>. Send it on anyway, so "
           "the connection records the outcome.</p>" if "error" in body else
           "<p>The provider approved. One step is left, as the user who started the connection.</p>")
        + "<ol><li>Open <a href='/api/docs/'>/api/docs/</a> (signed in with <strong>Authorize</strong>, as "
        "for <code>POST /api/v1/providers</code>).</li>"
        f"<li>Call <code>POST {escape(path)}</code> with this body:</li></ol>"
        f"<pre id='complete-body'>{escape(json.dumps(body, indent=2))}</pre>"
        "<p>The answer is <code>{\"outcome\": \"connected\", \"connection_id\": ...}</code>; the first sync "
        "follows in a few seconds (<code>GET /api/v1/accounts</code>). The state works once, for its own user, "
        f"for {settings.OAUTH_STATE_TTL_SECONDS // 60} minutes.</p></body>"
    )
    response = HttpResponse(page)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
