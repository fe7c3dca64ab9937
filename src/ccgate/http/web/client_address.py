"""Which address a request comes from: the TCP peer, or what trusted proxies say in X-Forwarded-For.

X-Forwarded-For is believed only when the peer is one of CCGATE_TRUSTED_PROXIES (none by default),
and then only as far as the hops that are themselves trusted proxies: the address is the rightmost
entry not in the list, so a client cannot pick its own address by sending the header itself.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.requests import Request

Networks = tuple[IPv4Network | IPv6Network, ...]


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        parsed = ip_address(address.strip())
    except ValueError:
        return False
    return any(parsed in network for network in proxies)


def client_address(request: Request, proxies: Networks) -> str:
    """The address to throttle and log for this request."""
    peer = request.client.host if request.client else ""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        if hop and not _trusted(hop, proxies):
            return hop
    return peer
