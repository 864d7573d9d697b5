"""What a session looks like to its user: device, browser, OS and rough location.

Parsed locally from the User-Agent (``user-agents``) and, when ``GEOIP_PATH``
names a MaxMind database, from the IP address. Never a network call.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from user_agents import parse as parse_user_agent

logger = logging.getLogger("dashtam.sessions")

UNKNOWN = "Unknown"


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    browser: str
    os: str
    location: str

    @property
    def signature(self) -> tuple[str, str, str]:
        """What makes a login "from a new device": device, browser and location."""
        return (self.device, self.browser, self.location)


def _device_name(ua) -> str:
    family = (ua.device.family or "").strip()
    if family and family != "Other":
        return family[:64]
    if ua.is_bot:
        return "Bot"
    if ua.is_tablet:
        return "Tablet"
    if ua.is_mobile:
        return "Mobile"
    if ua.is_pc:
        return "Desktop"
    return UNKNOWN


def describe(*, user_agent: str, ip: str | None) -> DeviceInfo:
    if user_agent:
        ua = parse_user_agent(user_agent)
        device = _device_name(ua)
        browser = (ua.browser.family or UNKNOWN)[:64]
        os_name = (ua.os.family or UNKNOWN)[:64]
        if browser == "Other":
            browser = UNKNOWN
        if os_name == "Other":
            os_name = UNKNOWN
    else:
        device = browser = os_name = UNKNOWN
    return DeviceInfo(device=device, browser=browser, os=os_name, location=locate(ip))


@lru_cache(maxsize=4)
def _reader(path: str):
    import geoip2.database

    try:
        return geoip2.database.Reader(path)
    except (OSError, ValueError) as exc:
        logger.warning("GeoIP database could not be opened", extra={"error": type(exc).__name__})
        return None


def locate(ip: str | None) -> str:
    """"City, Country" from the local GeoIP2 database, else "Unknown"."""
    path = settings.GEOIP_PATH
    if not path or not ip:
        return UNKNOWN
    try:
        if not ipaddress.ip_address(ip).is_global:
            return UNKNOWN
    except ValueError:
        return UNKNOWN
    reader = _reader(path)
    if reader is None:
        return UNKNOWN
    import geoip2.errors

    try:
        if "City" in reader.metadata().database_type:
            found = reader.city(ip)
            parts = [found.city.name, found.country.name]
        else:
            found = reader.country(ip)
            parts = [found.country.name]
    except (geoip2.errors.AddressNotFoundError, ValueError, TypeError):
        return UNKNOWN
    text = ", ".join(p for p in parts if p)
    return text[:128] or UNKNOWN
