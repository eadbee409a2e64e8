"""The address failed sign-ins are counted against: the peer, unless the peer is one of TRUSTED_PROXIES,
in which case X-Forwarded-For is read from the right, past every trusted proxy, to the first address
that is not one. Entries left of that are the client's to write, so they are never believed."""

from ipaddress import ip_network

import pytest
from django.test import RequestFactory

from eventhub.lib.login_throttle import client_address

PROXIES = [ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")]


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), [
    ("198.51.100.7", "203.0.113.5", "198.51.100.7"),  # not from a proxy of ours: the header is the client's
    ("10.0.0.1", "203.0.113.5", "203.0.113.5"),
    ("10.0.0.1", "192.0.2.1, 203.0.113.5", "203.0.113.5"),  # the left entry was forged by the client
    ("10.0.0.1", "203.0.113.5, 10.0.0.2", "203.0.113.5"),  # two trusted hops
    ("10.0.0.1", None, "10.0.0.1"),  # nothing forwarded: the proxy is the client
    ("10.0.0.1", "not-an-address", "10.0.0.1"),  # what a proxy of ours wrote is no address: stop there
    ("::ffff:10.0.0.1", "203.0.113.5", "203.0.113.5"),  # an IPv4 peer on a dual-stack socket
    ("2001:db8::1", "2001:db8::2, 2a00:1450::1", "2a00:1450::1"),
    ("not-an-address", None, None),
])
def test_it_believes_only_what_trusted_proxies_forwarded(settings, peer, forwarded_for, client):
    settings.TRUSTED_PROXIES = PROXIES
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    request = RequestFactory().post("/api/token", REMOTE_ADDR=peer, **headers)
    assert client_address(request) == client


def test_without_trusted_proxies_it_is_the_peer_whatever_is_forwarded(settings):
    settings.TRUSTED_PROXIES = []
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert client_address(request) == "10.0.0.1"
