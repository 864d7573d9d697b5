"""Charles Schwab Trader API (OAuth 2 authorization code, HTTP Basic client credentials).

- ``GET  {base}/v1/oauth/authorize?client_id&redirect_uri&response_type=code&state``
- ``POST {base}/v1/oauth/token`` (Basic auth) for ``authorization_code`` and ``refresh_token``;
  access tokens last about 30 minutes, refresh tokens 7 days.
- ``GET  {base}/trader/v1/accounts/accountNumbers`` -> ``[{accountNumber, hashValue}]``; every
  later call names an account by its hash, never by its number.
- ``GET  {base}/trader/v1/accounts?fields=positions``
- ``GET  {base}/trader/v1/accounts/{hash}/transactions?startDate&endDate&types``
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from providers.clients.base import AccountData, BaseClient, TransactionData
from providers.exceptions import ProviderError

TRANSACTION_TYPES = [
    "TRADE", "RECEIVE_AND_DELIVER", "DIVIDEND_OR_INTEREST", "ACH_RECEIPT", "ACH_DISBURSEMENT",
    "CASH_RECEIPT", "CASH_DISBURSEMENT", "ELECTRONIC_FUND", "WIRE_OUT", "WIRE_IN", "JOURNAL",
]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _decimal(value) -> str | None:
    if value is None:
        return None
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return None


def mask(number: str) -> str:
    digits = str(number or "")
    return "****" + digits[-4:] if digits else ""


class SchwabClient(BaseClient):
    key = "schwab"
    supports_pkce = False  # Schwab's authorize endpoint documents no PKCE parameters
    refresh_token_lifetime = timedelta(days=7)

    @classmethod
    def from_settings(cls) -> SchwabClient:
        return cls(
            base_url=settings.SCHWAB_API_BASE_URL,
            client_id=settings.SCHWAB_CLIENT_ID,
            client_secret=settings.SCHWAB_CLIENT_SECRET,
            redirect_uri=settings.SCHWAB_REDIRECT_URI,
            rate_limit=settings.SCHWAB_RATE_LIMIT,
        )

    def _json(self, response):
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{self.key}: response is not JSON", code="bad_response") from None

    def list_accounts(self, *, access_token: str) -> list[AccountData]:
        numbers = self._json(self.request("GET", "/trader/v1/accounts/accountNumbers",
                                          access_token=access_token))
        hashes = {str(n.get("accountNumber")): n.get("hashValue") for n in numbers or []
                  if isinstance(n, dict) and n.get("hashValue")}
        details = self._json(self.request("GET", "/trader/v1/accounts", params={"fields": "positions"},
                                          access_token=access_token))
        by_number = {}
        for item in details or []:
            sec = (item or {}).get("securitiesAccount") or {}
            by_number[str(sec.get("accountNumber"))] = sec
        out = []
        for number, hash_value in hashes.items():
            sec = by_number.get(number, {})
            balances = sec.get("currentBalances") or {}
            positions = []
            for pos in sec.get("positions") or []:
                instrument = pos.get("instrument") or {}
                positions.append({
                    "symbol": str(instrument.get("symbol") or "")[:32],
                    "asset_type": str(instrument.get("assetType") or ""),
                    "quantity": _decimal((pos.get("longQuantity") or 0) - (pos.get("shortQuantity") or 0)),
                    "average_price": _decimal(pos.get("averagePrice")),
                    "market_value": _decimal(pos.get("marketValue")),
                })
            out.append(AccountData(
                hash_value=str(hash_value),
                account_number=number,
                account_type=str(sec.get("type") or "")[:32],
                cash_balance=_decimal(balances.get("cashBalance")),
                market_value=_decimal(balances.get("longMarketValue")),
                total_value=_decimal(balances.get("liquidationValue")),
                positions=positions,
            ))
        return out

    def list_transactions(self, *, access_token: str, account_hash: str, start: datetime,
                          end: datetime, types: list[str] | None = None) -> list[TransactionData]:
        params = {"startDate": _iso(start), "endDate": _iso(end),
                  "types": ",".join(types or TRANSACTION_TYPES)}
        rows = self._json(self.request("GET", f"/trader/v1/accounts/{account_hash}/transactions",
                                       params=params, access_token=access_token))
        out = []
        for row in rows or []:
            if not isinstance(row, dict) or row.get("activityId") is None:
                continue
            when = parse_datetime(str(row.get("time") or row.get("tradeDate") or ""))
            if when is None:
                continue
            if timezone.is_naive(when):
                when = timezone.make_aware(when, timezone.get_fixed_timezone(0))
            symbol = ""
            for item in row.get("transferItems") or []:
                symbol = str(((item or {}).get("instrument") or {}).get("symbol") or "")
                if symbol and symbol != "CURRENCY_USD":
                    break
                symbol = ""
            out.append(TransactionData(
                provider_id=str(row["activityId"]),
                type=str(row.get("type") or "")[:64],
                date=when,
                description=str(row.get("description") or "")[:255],
                amount=_decimal(row.get("netAmount")) or "0",
                symbol=symbol[:32],
            ))
        return out
