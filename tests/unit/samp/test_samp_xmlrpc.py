"""The safe XML-RPC codec (`sampflow.samp.xmlrpc`): defusedxml parsing, bounds, faults."""

from __future__ import annotations

import xmlrpc.client

import pytest

from sampflow.samp.errors import FAULT_CODE
from sampflow.samp.xmlrpc import (
    Fault,
    MalformedRequest,
    dumps_fault,
    dumps_request,
    dumps_response,
    loads_request,
    loads_response,
    safe_xmlrpc_loads,
)

VALUES = {
    "s": "plain",
    "markup": "<a & b> \"quoted\" 'apos'",
    "unicode": "\u00e9\u4e2d\U0001F600",
    "list": ["1", ["2", {"deep": "3"}]],
    "empty": "",
    "emptymap": {},
    "emptylist": [],
}


def test_request_round_trip() -> None:
    body = dumps_request("samp.hub.notify", ("key", "c1", {"samp.mtype": "x.y",
                                                           "samp.params": VALUES}))
    assert isinstance(body, bytes)
    method, params = loads_request(body)
    assert method == "samp.hub.notify"
    assert params == ("key", "c1", {"samp.mtype": "x.y", "samp.params": VALUES})


def test_lenient_types_are_accepted_as_sent() -> None:
    body = xmlrpc.client.dumps((1, 2.5, True, b"raw"), "m").encode()
    assert loads_request(body) == ("m", (1, 2.5, True, b"raw"))


def test_stdlib_peers_understand_what_we_send() -> None:
    params, method = xmlrpc.client.loads(dumps_request("samp.hub.ping", ()))
    assert (params, method) == ((), "samp.hub.ping")
    assert xmlrpc.client.loads(dumps_response({"a": ["b"]}))[0] == ({"a": ["b"]},)


def test_void_response_is_the_empty_string() -> None:
    assert loads_response(dumps_response(None)) == ""
    assert loads_response(dumps_response("")) == ""
    assert loads_response(dumps_response({"k": "v"})) == {"k": "v"}


def test_fault_round_trip() -> None:
    with pytest.raises(Fault) as info:
        loads_response(dumps_fault("unknown private key"))
    assert info.value.faultCode == FAULT_CODE
    assert info.value.faultString == "unknown private key"
    with pytest.raises(Fault):
        safe_xmlrpc_loads(dumps_fault("x", 5))


XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       b"<methodCall><methodName>samp.hub.ping</methodName><params><param><value>"
       b"<string>&x;</string></value></param></params></methodCall>")
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">'
                     % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b"]>\n<methodCall><methodName>samp.hub.ping</methodName><params><param><value>"
            b"<string>&lol9;</string></value></param></params></methodCall>")
DTD_ONLY = (b'<?xml version="1.0"?>\n<!DOCTYPE methodCall SYSTEM "http://127.0.0.1:1/x.dtd">\n'
            b"<methodCall><methodName>samp.hub.ping</methodName></methodCall>")
INTERNAL_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e "hi">]>'
                   b"<methodCall><methodName>&e;</methodName></methodCall>")


@pytest.mark.parametrize("body", [XXE, LAUGHS, DTD_ONLY, INTERNAL_ENTITY],
                         ids=["xxe", "billion-laughs", "external-dtd", "internal-entity"])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    for parse in (loads_request, loads_response, safe_xmlrpc_loads):
        with pytest.raises(MalformedRequest):
            parse(body)


@pytest.mark.parametrize("body", [
    b"", b"not xml", b"<methodCall>", b"<methodCall><methodName>x</methodName>",
    b"<methodCall><params/></methodCall>",
    b"<methodCall><methodName>m</methodName><params><param><value><int>nan</int></value>"
    b"</param></params></methodCall>",
    b"\xff\xfe<garbage/>",
], ids=["empty", "text", "unclosed", "unclosed2", "no-method", "bad-int", "bad-encoding"])
def test_malformed_requests_raise_malformed_request(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        loads_request(body)


def test_body_size_is_bounded() -> None:
    body = dumps_request("m", ("x" * 2000,))
    with pytest.raises(MalformedRequest, match="exceeds"):
        loads_request(body, max_bytes=1000)
    assert loads_request(body, max_bytes=len(body))[0] == "m"


def test_nesting_depth_is_bounded() -> None:
    value: object = "leaf"
    for _ in range(100):
        value = [value]
    body = dumps_request("m", (value,))
    with pytest.raises(MalformedRequest, match="nesting"):
        loads_request(body)
    assert loads_request(body, max_depth=1000)[1] == (value,)
    shallow: object = "leaf"
    for _ in range(10):
        shallow = {"k": [shallow]}
    assert loads_request(dumps_request("m", (shallow,)))[1] == (shallow,)


def test_safe_xmlrpc_loads_is_like_the_stdlib() -> None:
    body = dumps_request("samp.hub.ping", ("a",))
    assert safe_xmlrpc_loads(body) == xmlrpc.client.loads(body.decode())
    assert safe_xmlrpc_loads(body.decode()) == (("a",), "samp.hub.ping")
    assert safe_xmlrpc_loads(dumps_response("r")) == (("r",), None)


def typed_call(xml_value: str) -> bytes:
    """A ``methodCall`` whose one parameter is a map holding `xml_value` in a list."""
    return ("<?xml version='1.0'?><methodCall><methodName>samp.hub.notifyAll</methodName>"
            "<params><param><value><struct><member><name>k</name><value><array><data>"
            f"<value>{xml_value}</value></data></array></value></member></struct></value>"
            "</param></params></methodCall>").encode()


UNRELAYABLE = {
    "nil": "<nil/>", "i8-big": "<i8>1099511627776</i8>", "int-big": "<int>3000000000</int>",
    "i4-small": "<i4>-2147483649</i4>", "bigdecimal": "<bigdecimal>1.5</bigdecimal>",
    "extension": "<ex:nil xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'/>",
}
RELAYABLE = {
    "int": ("<int>7</int>", 7), "i4": ("<i4>-2147483648</i4>", -(2**31)),
    "i8-small": ("<i8>2147483647</i8>", 2**31 - 1), "double": ("<double>2.5</double>", 2.5),
    "boolean": ("<boolean>1</boolean>", True), "base64": ("<base64>eA==</base64>", b"x"),
}


@pytest.mark.parametrize("xml_value", list(UNRELAYABLE.values()), ids=list(UNRELAYABLE))
def test_values_a_hub_cannot_relay_are_refused(xml_value: str) -> None:
    for types in ("relayable", "samp"):
        with pytest.raises(MalformedRequest, match="cannot be relayed|not a SAMP type"):
            loads_request(typed_call(xml_value), types=types)
    loads_request(typed_call(xml_value))  # "any": as sent


@pytest.mark.parametrize("case", list(RELAYABLE.values()), ids=list(RELAYABLE))
def test_relayable_values_are_kept_as_sent_and_refused_by_samp_types(
        case: tuple[str, object]) -> None:
    xml_value, value = case
    assert loads_request(typed_call(xml_value), types="relayable")[1] == ({"k": [value]},)
    with pytest.raises(MalformedRequest, match="not a SAMP type"):
        loads_request(typed_call(xml_value), types="samp")


def test_relayed_values_encode_again() -> None:
    """What "relayable" accepts, the hub can always marshal again (the bug of issue 9, 2)."""
    body = typed_call("".join(f"</value><value>{x}" for x, _ in RELAYABLE.values()))
    _, params = loads_request(body, types="relayable")
    again = dumps_request("m", params)
    assert loads_request(again, types="relayable")[1] == params


def test_samp_types_accept_strings_lists_maps_and_untyped_values() -> None:
    for types in ("relayable", "samp"):
        assert loads_request(typed_call("plain"), types=types)[1] == ({"k": ["plain"]},)
        assert loads_request(typed_call("<string>s</string>"), types=types)[1] == (
            {"k": ["s"]},)
        body = dumps_request("m", ({"samp.mtype": "x.y", "samp.params": VALUES},))
        assert loads_request(body, types=types)[1][0]["samp.params"] == VALUES


def test_value_count_is_bounded() -> None:
    from sampflow.samp.xmlrpc import MAX_VALUES

    big = 1 << 26  # the value bound, not the size bound, is under test
    fits = dumps_request("m", (["x"] * (MAX_VALUES - 1),))
    assert len(loads_request(fits, max_bytes=big)[1][0]) == MAX_VALUES - 1
    with pytest.raises(MalformedRequest, match="values"):
        loads_request(dumps_request("m", (["x"] * MAX_VALUES,)), max_bytes=big)


def test_string_length_is_bounded() -> None:
    from sampflow.samp.xmlrpc import MAX_STRING_CHARS

    big = 1 << 26  # the string bound, not the size bound, is under test
    text = "x" * MAX_STRING_CHARS
    assert loads_request(dumps_request("m", (text,)), max_bytes=big)[1][0] == text
    for body in (dumps_request("m", (text + "x",)), dumps_request("m", ([text + "x"],))):
        with pytest.raises(MalformedRequest, match="longer than"):
            loads_request(body, max_bytes=big)


def test_samp_types_leave_scalar_method_arguments_alone() -> None:
    """``allowReverseCallbacks(key, True)`` as astropy's web client sends it; a timeout as
    an int: arguments outside any map or list, which the hub checks itself."""
    body = xmlrpc.client.dumps(("key", True, 10), "samp.webhub.allowReverseCallbacks").encode()
    assert loads_request(body, types="samp") == (
        "samp.webhub.allowReverseCallbacks", ("key", True, 10))
    nested = xmlrpc.client.dumps(("key", {"a": {"b": [True]}}), "m").encode()
    with pytest.raises(MalformedRequest, match="<boolean> is not a SAMP type"):
        loads_request(nested, types="samp")
