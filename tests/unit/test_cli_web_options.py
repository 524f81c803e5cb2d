"""``sampflow hub | run | link``'s Web Profile options become `attach_web_profile`'s plain
keyword options (`sampflow.cli.web_profile_options`)."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from sampflow.cli import build_parser, web_profile_options
from sampflow.samp.hub.web import DEFAULT_MAX_PER_ORIGIN, WEB_PORT, attach_web_profile
from sampflow.samp.hub.web_consent import ConsentRequest, allow_all_for_testing
from sampflow.samp.hub.web_policy import DEFAULT_HARMLESS_MTYPES


def options(*argv: str) -> dict[str, object] | None:
    return web_profile_options(build_parser().parse_args(["hub", *argv]))


def test_defaults_are_the_standards() -> None:
    got = options()
    assert got is not None
    assert got["port"] == WEB_PORT and got["max_per_origin"] == DEFAULT_MAX_PER_ORIGIN
    assert got["harmless_mtypes"] == DEFAULT_HARMLESS_MTYPES
    assert got["consent_timeout"] == 65.0  # the prompt's 60 s, and a margin
    # Every key is a keyword option of attach_web_profile.
    assert set(got) <= set(inspect.signature(attach_web_profile).parameters)


def test_each_option_is_carried_over() -> None:
    got = options("--web-port", "0", "--web-allow", "http://a.org", "--web-harmless", "x.*",
                  "--web-harmless", "y.z", "--web-consent-timeout", "7", "--web-max-per-origin",
                  "3")
    assert got is not None
    assert (got["port"], got["harmless_mtypes"], got["consent_timeout"],
            got["max_per_origin"]) == (0, ["x.*", "y.z"], 12.0, 3)
    consent = got["consent"]
    assert callable(consent)
    allowed = consent(ConsentRequest("page", "http://a.org", "127.0.0.1", {}))
    assert asyncio.run(allowed) is True  # on the allow-list: no question asked


def test_allow_all_for_testing_and_no_web_profile() -> None:
    got = options("--web-allow-all-for-testing")
    assert got is not None and got["consent"] is allow_all_for_testing
    assert options("--no-web-profile") is None


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_max_per_origin_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["hub", "--web-max-per-origin", value])
