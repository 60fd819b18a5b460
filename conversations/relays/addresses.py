"""Which relay addresses the app may send requests (and keys) to: the rule, once.

http and https only. Never link-local addresses, cloud metadata endpoints or
unspecified, multicast and reserved ones, in any spelling (IPv4-mapped IPv6,
decimal or hex IPv4). Private and loopback addresses (a new-api on your own
network) only with RELAY_ALLOW_PRIVATE. A host name is checked by what it
resolves to now, when it resolves.

Twice: `check_relay_url` when a relay is saved, and `check_connection` each
time a connection to a relay is opened, on the very address connected to
(conversations.infra.netio resolves the name, asks it about every address,
then connects to the checked address itself). A name that resolved to a
public address when it was saved and to 169.254.169.254 or 127.0.0.1 later
(DNS rebinding) is refused before a byte, key or prompt is sent. The one
loopback relay allowed without RELAY_ALLOW_PRIVATE is the app's own
simulator, at SIMULATOR_URL (the port `serve` listens on).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                  "instance-data.ec2.internal"}
METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "168.63.129.16",
)}
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


class RelayAddressError(ValueError):
    """A relay address the app will not send requests to, said in plain words."""


def check_relay_url(url: str, *, allow_private: bool | None = None) -> str:
    """`url` if the app may send requests to it; RelayAddressError otherwise."""
    allow_private = settings.RELAY_ALLOW_PRIVATE if allow_private is None else allow_private
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in {"http", "https"}:
        raise RelayAddressError(gettext("A relay address must start with http:// or https://."))
    if parts.username or parts.password:
        raise RelayAddressError(
            gettext("Put the relay's key in the key field, not in the address."))
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise RelayAddressError(gettext("The relay address has no host name."))
    if host in METADATA_HOSTS:
        raise RelayAddressError(_metadata_message(host))
    literal = _literal_address(host)
    if literal is not None:
        check_address(literal, host, allow_private=allow_private)
        return url
    if host == "localhost" or host.endswith(".localhost"):
        if not allow_private:
            raise RelayAddressError(_private_message(host))
        return url
    for address in _resolve(host):
        check_address(address, host, allow_private=allow_private)
    return url


def check_connection(host: str, port: int, address: str) -> None:
    """At connect time: RelayAddressError unless a connection to `address` (an IP
    literal `host` resolved to just now) may be opened for a relay on `port`.

    The rule of `check_relay_url`, with RELAY_ALLOW_PRIVATE read now; loopback
    is also allowed to this process's own simulator (SIMULATOR_URL's host and
    port), and only loopback.
    """
    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_HOSTS:
        raise RelayAddressError(_metadata_message(name))
    ip = ipaddress.ip_address(address.split("%")[0])
    allow_private = settings.RELAY_ALLOW_PRIVATE or (
        _unwrap(ip).is_loopback and _is_own_simulator(name, port))
    shown = name if _literal_address(name) == ip else f"{name} ({ip})"
    check_address(ip, shown, allow_private=allow_private)


def _is_own_simulator(host: str, port: int) -> bool:
    if not settings.SIMULATOR_URL:
        return False
    scheme, own_host, own_port = host_of(settings.SIMULATOR_URL)
    own_port = own_port or (443 if scheme == "https" else 80)
    return (own_host, own_port) == (host, port)


def host_of(url: str) -> tuple[str, str, int | None]:
    """What a relay key is tied to: scheme, host and port."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").rstrip(".").lower(), port


def _literal_address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # 2852039166, 0xa9fea9fe, 169.254.43518: what the C resolver accepts as IPv4
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return address


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in ipaddress.ip_network("::/96"):  # IPv4-compatible
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and int(embedded) != 0:
            return embedded
    return address


def check_address(address: IPAddress, host: str, *, allow_private: bool) -> None:
    """RelayAddressError, naming `host`, unless the app may send requests to `address`."""
    address = _unwrap(address)
    if address in METADATA_ADDRESSES:
        raise RelayAddressError(_metadata_message(host))
    if address.is_link_local:
        raise RelayAddressError(
            gettext("%(host)s is a link-local address, which a relay never has.")
            % {"host": host})
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        raise RelayAddressError(
            gettext("%(host)s is not an address a relay can have.") % {"host": host})
    if address.is_loopback or address.is_private or address in SHARED_ADDRESS_SPACE:
        if not allow_private:
            raise RelayAddressError(_private_message(host))


def _metadata_message(host: str) -> str:
    return gettext("%(host)s is a cloud metadata service, not a relay.") % {"host": host}


def _private_message(host: str) -> str:
    return gettext("%(host)s is on this machine or a private network; set "
                   "RELAY_ALLOW_PRIVATE=true to allow relays there (for example a new-api on "
                   "your own network).") % {"host": host}


def _resolve(host: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []  # not resolvable now: the request will fail in plain words if it stays so
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
