"""Local means every resolved address is loopback (or administrator-allowed), not a string prefix."""
import ipaddress

import pytest

from pipelines.core import locality
from pipelines.models.references import ModelRef


@pytest.mark.parametrize("url,local", [
    ("http://127.0.0.1:8001/v1", True), ("http://localhost:8001/v1", True), ("http://[::1]:8001/v1", True),
    ("http://127.5.6.7/v1", True),
    ("https://127.0.0.1.example.com/v1", False),      # a name that only starts like loopback
    ("https://localhost.example.com/v1", False),
    ("https://api.openai.com/v1", False),              # remote, or unresolvable offline: remote either way
    ("http://no-such-host.invalid/v1", False),
    ("http://10.20.1.5:8000/v1", False), ("", False),
])
def test_local_by_resolved_address(url, local):
    assert locality.is_local(url) is local
    assert ModelRef(spec=url, kind="endpoint", base_url=url).is_local_endpoint is local


def test_a_name_resolving_to_a_remote_address_is_remote(monkeypatch):
    monkeypatch.setattr(locality, "resolved_addresses",
                        lambda host: [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("93.184.216.34")])
    assert not locality.is_local("http://sneaky.example/v1")


def test_administrator_allow_list(monkeypatch):
    monkeypatch.setenv(locality.ALLOW_ENV, "10.20.0.0/16, not-a-network")
    assert locality.is_local("http://10.20.1.5:8000/v1")
    assert not locality.is_local("http://10.21.1.5:8000/v1")


# -- endpoint URLs: readable, and never carrying credentials -------------------------------------

def test_credentials_in_an_endpoint_url_are_refused_everywhere_it_enters(tmp_path):
    import pytest

    from pipelines.core.errors import UserError
    from pipelines.core.locality import endpoint_url
    from pipelines.data import generate as datagen
    from pipelines.models.references import resolve_model
    url = "https://dr:s3cret-key@llm.example.org/v1"
    for make in (lambda: endpoint_url(url), lambda: resolve_model(f"openai:gpt-4o@{url}"),
                 lambda: datagen.DatagenConfig(docs=str(tmp_path), dataset="d", model="m", base_url=url)):
        with pytest.raises(UserError) as err:
            make()
        assert err.value.code == "endpoint.credentials_in_url"
        assert "s3cret" not in err.value.problem + err.value.fix and "llm.example.org" in err.value.problem


def test_a_malformed_endpoint_url_is_a_clear_error_not_a_traceback():
    import pytest

    from pipelines.core.errors import UserError
    from pipelines.core.locality import endpoint_url
    for bad in ("http://[::1", "ftp://host/v1", "http:///v1", "http://host:99999/v1"):
        with pytest.raises(UserError) as err:
            endpoint_url(bad)
        assert err.value.code == "endpoint.bad_url", bad
    assert endpoint_url(" http://[::1]:8000/v1/ ") == "http://[::1]:8000/v1"
