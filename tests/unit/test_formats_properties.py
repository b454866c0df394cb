"""Vendor-shaped garbage never crashes an adapter: it is an event, a Skip or an Invalid."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.model import SessionEvent
from worker.formats import FORMATS, Invalid, Outcome, Skip, decode_line, decode_record
from worker.formats.base import canonical_ip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)


def plausible(*examples: Any) -> st.SearchStrategy[Any]:
    """Mostly realistic values of a field (valid, placeholder, broken), else any JSON."""
    return st.one_of(st.sampled_from(examples), st.sampled_from(examples), json_values)


ips = plausible("81.2.69.143", "2001:db8::1", "10.0.0.1", "null", "", "redacted", "1.2.3", None, 7)
times = plausible(
    "2021-11-03T03:25:28.923Z",
    "2025-10-01 05:39:16.467000000",
    1634940691257,
    "redacted",
    "2021-02-30T00:00:00Z",
    -1,
    10**30,
)
sessions = plausible("sid-1", "unknown", "null", "", None, 12345)


def shaped(
    keys: dict[str, st.SearchStrategy[Any]], core: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts built on a vendor's keys: the core ones always present, any subset of
    the others, plus a few stray keys.
    """
    required = {k: v for k, v in keys.items() if k in core}
    optional = {k: v for k, v in keys.items() if k not in core}
    return st.builds(
        lambda known, stray: {**stray, **known},
        st.fixed_dictionaries(required, optional=optional),
        st.dictionaries(st.text(max_size=8), json_values, max_size=2),
    )


auth0_event = shaped(
    {
        "type": plausible("s", "ssa", "slo", "sertft", "seacft", "sapi", "f", ""),
        "date": times,
        "ip": ips,
        "client_ip": ips,
        "user_agent": plausible("Chrome 120.0.0 / Mac OS X 10.15.7"),
        "user_id": json_values,
        "hostname": plausible("dev-x.au.auth0.com", "auth.example.com", ""),
        "tenant_name": json_values,
        "log_id": plausible("900200", None, 3),
        "_id": json_values,
        "details": shaped(
            {
                "session_id": sessions,
                "refresh_token": shaped({"session_id": sessions}),
                "prompts": st.lists(shaped({"session_id": sessions}), max_size=3) | json_values,
            }
        )
        | json_values,
    },
    core=("type", "date", "ip", "details"),
)
auth0_records = st.one_of(
    auth0_event,
    shaped({"log_id": json_values, "data": auth0_event}, core=("data",)),
    shaped(
        {
            "source": plausible("aws.partner/auth0.com/t/auth0.logs"),
            "detail": shaped({"log_id": json_values, "data": auth0_event}, core=("data",)),
        },
        core=("detail",),
    ),
    shaped({"json": auth0_event | json_values}),
)

okta_event = shaped(
    {
        "uuid": plausible("u-1", "redacted", None),
        "published": times,
        "eventType": plausible(
            "user.session.start",
            "user.session.end",
            "user.authentication.sso",
            "policy.evaluate_sign_on",
            "user.session.impersonation.grant",
            "system.org.rate_limit.violation",
            "com.okta.event_hook",
        ),
        "displayMessage": json_values,
        "legacyEventType": json_values,
        "actor": shaped({"id": json_values, "type": plausible("User"), "alternateId": json_values}),
        "client": shaped(
            {
                "ipAddress": ips,
                "id": json_values,
                "userAgent": shaped({"rawUserAgent": plausible("Okta-Integrations", "x")}),
                "ipChain": st.lists(shaped({"ip": ips}), max_size=2) | json_values,
            },
            core=("ipAddress",),
        ),
        "authenticationContext": shaped(
            {"externalSessionId": sessions}, core=("externalSessionId",)
        ),
        "securityContext": shaped({"asNumber": plausible(14618, "AS1", "²", 2**40)}),
        "outcome": shaped({"result": plausible("SUCCESS", "FAILURE", "DENY", "ALLOW")}),
        "request": shaped({"ipChain": st.lists(shaped({"ip": ips}), max_size=2) | json_values}),
        "target": st.lists(shaped({"type": plausible("AppInstance"), "id": json_values})),
    },
    core=("uuid", "published", "eventType", "client", "authenticationContext"),
)
okta_records = st.one_of(
    okta_event,
    shaped({"source": plausible("aws.partner/okta.com/x"), "detail": okta_event}, core=("detail",)),
    shaped(
        {
            "eventType": st.just("com.okta.event_hook"),
            "source": plausible("https://acme.okta.com/api/v1/eventHooks/x", "::", "http://["),
            "data": shaped({"events": st.lists(okta_event | json_values, max_size=3)}),
        },
        core=("eventType", "data"),
    ),
)

keycloak_records = shaped(
    {
        "id": json_values,
        "time": times,
        "type": plausible("LOGIN", "LOGOUT", "CODE_TO_TOKEN", "LOGIN_ERROR", "login", "A B"),
        "realmId": json_values,
        "realmName": json_values,
        "clientId": json_values,
        "userId": json_values,
        "sessionId": sessions,
        "ipAddress": ips,
        "error": plausible(None, "invalid_grant"),
        "details": shaped({"code_id": sessions, "authSessionParentId": sessions}) | json_values,
        "operationType": plausible("CREATE"),
        "resourceType": json_values,
        "message": json_values,
        "loggerName": plausible("org.keycloak.events", "io.quarkus"),
        "timestamp": times,
    },
    core=("time", "type", "ipAddress"),
)

fragments = st.sampled_from(
    [
        "type=LOGIN",
        'type="LOGIN"',
        "type=REFRESH_TOKEN",
        "type=LOGIN_ERROR",
        "operationType=CREATE",
        "realmId=test",
        'realmId="a b"',
        "realmId=",
        "ipAddress=10.0.0.1",
        'ipAddress="2001:db8::1"',
        "ipAddress=null",
        "ipAddress=bogus",
        "code_id=abc",
        'sessionId="s"',
        "authSessionParentId=p",
        "redirect_uri='http://a b",
        'note="x \\"',
        "=",
        "'",
        '"',
        ", ",
    ]
)
headers = st.sampled_from(
    [
        "",
        "2021-10-22 22:11:31,257 DEBUG [org.keycloak.events] (default task-2) ",
        "2021-10-22 22:11:31,257 WARN  [org.keycloak.events] (default task-2) ",
        "22:11:31,257 DEBUG [org.keycloak.events] (t) ",
        "2021-10-22 22:11:31,257 INFO  [org.jboss.as] (Controller Boot Thread) ",
        "9999-99-99 99:99:99,999 DEBUG [org.keycloak.events] (x) ",
    ]
)
text_lines = st.builds(
    lambda head, parts, sep, tail: head + sep.join(parts) + tail,
    headers,
    st.lists(fragments | st.text(max_size=12), max_size=8),
    st.sampled_from([", ", ",", " "]),
    st.text(max_size=8),
)


def check(outcome: Outcome) -> None:
    """Every outcome is one of the three kinds; events satisfy the native contract."""
    assert isinstance(outcome, SessionEvent | Skip | Invalid)
    if isinstance(outcome, SessionEvent):
        assert outcome.event_id and outcome.session.id
        assert canonical_ip(outcome.ip) == outcome.ip
        assert isinstance(outcome.occurred_at, int)
    else:
        assert outcome.reason


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(auth0_records, okta_records, keycloak_records), st.sampled_from(FORMATS))
def test_vendor_shaped_records_never_raise(record: dict[str, Any], fmt: str) -> None:
    check(decode_record(record, fmt))
    assert decode_record(record, fmt) == decode_record(record, fmt)  # deterministic


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(auth0_records, okta_records, keycloak_records))
def test_vendor_shaped_lines_never_raise(record: dict[str, Any]) -> None:
    try:
        line = orjson.dumps(record)
    except TypeError:  # integers beyond 64 bits cannot be JSON on the wire
        return
    for outcome in decode_line(line):
        check(outcome)
    for outcome in decode_line(orjson.dumps([record, record])):
        check(outcome)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text_lines, st.sampled_from(["auto", "keycloak"]))
def test_text_lines_never_raise(line: str, fmt: str) -> None:
    for outcome in decode_line(line.encode("utf-8"), fmt):
        check(outcome)
    wrapped = orjson.dumps({"message": line})
    for outcome in decode_line(wrapped, fmt):
        check(outcome)


@given(st.binary(max_size=200), st.sampled_from(FORMATS))
def test_arbitrary_bytes_never_raise(data: bytes, fmt: str) -> None:
    for outcome in decode_line(data, fmt):
        check(outcome)
