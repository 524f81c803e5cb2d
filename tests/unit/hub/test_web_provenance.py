"""URL provenance in the hub core, without sockets (issue 9 items 6 and 7).

A URL is translatable only if a Standard Profile client mentioned it before any web client
did; what a web client mentioned first stays untranslatable however it is repeated, relayed,
or drowned in other URLs. URLs are compared split first, then decoded once.
"""

from __future__ import annotations

import pytest

from sampflow.samp.hub.core import HubCore
from sampflow.samp.hub.registry import Profile
from sampflow.samp.hub.web_policy import UrlControl, file_path, url_key


def message(mtype: str, **params: object) -> dict:
    return {"samp.mtype": mtype, "samp.params": params}


@pytest.fixture
def setup() -> tuple[HubCore, UrlControl, object, object]:
    core = HubCore()
    urls = UrlControl(max_urls=50)
    core.message_observers.append(urls)
    desk = core.register(Profile.STANDARD)
    desk.callback = "http://127.0.0.1:1/"
    web = core.register(Profile.WEB)
    web.callback = "pull"
    core.declare_subscriptions(desk.private_key, {"*": {}})
    core.declare_subscriptions(web.private_key, {"*": {}})
    return core, urls, desk, web


def test_relayed_web_url_is_never_translatable(setup) -> None:  # type: ignore[no-untyped-def]
    core, urls, desk, web = setup
    secret = "file:///home/u/.ssh/id_rsa"
    core.notify(web.private_key, desk.public_id,
                message("table.select.rowList", url=secret, **{"row-list": ["1"]}))
    # The desktop client (a relay) repeats it, in every spelling, in messages and responses.
    for spelling in (secret, "file:/home/u/.ssh/id_rsa", "FILE://localhost/home/u/.ssh/id%5Frsa",
                     "  " + secret):
        core.notify_all(desk.private_key, message("table.select.rowList", url=spelling))
        msg_id = core.call(web.private_key, desk.public_id, "t", message("coord.get.sky"))
        core.reply(desk.private_key, msg_id, {"samp.status": "samp.ok",
                                              "samp.result": {"u": [spelling]}})
    for spelling in (secret, "file:/home/u/.ssh/id_rsa", "file:///home/u/.ssh/id%5Frsa"):
        assert urls.lookup(spelling) is None and not urls.allows(spelling)
    # A URL the desktop client mentions first is translatable, and stays so after the page
    # mentions it too.
    core.notify(desk.private_key, web.public_id, message("table.load.votable",
                                                         url="file:///data/t%201.vot"))
    core.notify(web.private_key, desk.public_id, message("table.load.votable",
                                                         url="file:///data/t 1.vot"))
    assert urls.lookup("file:///data/t 1.vot") == "file:///data/t%201.vot"


def test_flooding_does_not_wash_a_web_url_clean(setup) -> None:  # type: ignore[no-untyped-def]
    core, urls, desk, web = setup
    core.notify(web.private_key, desk.public_id, message("table.load.votable",
                                                         url="file:///etc/shadow"))
    # The page mentions many more URLs than any bounded memory would keep, and the desktop
    # client mentions many more than the translatable memory keeps.
    many = [f"http://h/{i}" for i in range(20000)]
    core.notify(web.private_key, desk.public_id, message("table.load.votable", urls=many))
    for i in range(200):
        core.notify(desk.private_key, web.public_id, message("table.load.votable",
                                                             url=f"http://d/{i}"))
    core.notify(desk.private_key, web.public_id, message("table.load.votable",
                                                         url="file:///etc/shadow"))
    assert not urls.allows("file:///etc/shadow")
    assert urls.allows("http://d/199") and not urls.allows("http://d/0")  # bounded, oldest out


def test_web_metadata_and_deep_values_are_tainted(setup) -> None:  # type: ignore[no-untyped-def]
    core, urls, desk, web = setup
    deep: object = "file:///etc/deep"
    for _ in range(60):  # deeper than what is scanned for desktop offers
        deep = [deep]
    urls.taint({"samp.icon.url": "file:///etc/icon"})  # what web.py does for metadata
    core.notify(web.private_key, desk.public_id, message("table.load.votable", deep=deep))
    core.notify(desk.private_key, web.public_id, message("table.load.votable",
                                                         a="file:///etc/icon",
                                                         b="file:///etc/deep"))
    assert not urls.allows("file:///etc/icon") and not urls.allows("file:///etc/deep")


def test_web_paths_count_as_file_urls(setup) -> None:  # type: ignore[no-untyped-def]
    """A rule may build ``file://{{ params.path }}`` from a page's bare path: still tainted."""
    core, urls, desk, web = setup
    core.notify(web.private_key, desk.public_id, message("x.open", path="/etc/passwd",
                                                         other=" /d/secret?.vot"))
    for url in ("file:///etc/passwd", "file:///d/secret%3F.vot"):
        core.notify(desk.private_key, web.public_id, message("table.load.votable", url=url))
        assert not urls.allows(url)


def test_other_profiles_are_not_trusted() -> None:
    """Only Standard Profile clients and the hub offer URLs; a client of any other profile
    (web, or one added later) is treated as a web client."""
    assert UrlControl.TRUSTED == {Profile.STANDARD, Profile.HUB}


@pytest.mark.parametrize("offered,asked,same", [
    ("file:///d/secret%3F.vot", "file:///d/secret?.vot", False),   # issue 9 item 7
    ("file:///d/secret%3F.vot", "file:///d/secret%3F.vot", True),
    ("file:///d/a%20b.vot", "file:///d/a b.vot", True),
    ("file:///d/a%2520b", "file:///d/a%20b", False),                # decoded once, not twice
    ("file:///d/x.vot", "file:///d/x.vot?anything", True),          # a file has no query
    ("file:///d/x.vot", "file:///d/x.vot#frag", True),
    ("file:///d/x%23y.vot", "file:///d/x#y.vot", False),
    ("http://h/t?a=1", "http://h/t?a=2", False),
    ("http://H/t%3Fa", "http://h/t?a", False),
])
def test_keys_compare_what_is_opened(offered: str, asked: str, same: bool) -> None:
    assert (url_key(offered) == url_key(asked)) is same
    if offered.startswith("file:"):
        assert (file_path(offered) == file_path(asked)) is same
