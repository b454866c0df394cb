"""`scripts/kafka_local.py` extra listeners and SCRAM users, without starting Java.

Why: the secured-broker tests depend on this broker configuration; a wrong
protocol map or listener prefix would start a broker whose listeners do not
check what the tests think they check.
"""

from __future__ import annotations

import pytest

from tests.kafka_plugin import load_kafka_local

kl = load_kafka_local()


def test_extra_listeners_are_added_with_their_protocols_and_scoped_settings() -> None:
    listeners = [kl.Listener("MTLS", "SSL", {"ssl.client.auth": "required"}),
                 kl.Listener("oauth", "sasl_ssl", {"sasl.enabled.mechanisms": "OAUTHBEARER"})]
    props = kl.listener_properties(9092, 9093, listeners, [9101, 9102])
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,"
                                  "MTLS://127.0.0.1:9101,OAUTH://127.0.0.1:9102")
    assert props["advertised.listeners"] == ("PLAINTEXT://127.0.0.1:9092,"
                                             "MTLS://127.0.0.1:9101,OAUTH://127.0.0.1:9102")
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,MTLS:SSL,OAUTH:SASL_SSL")
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert props["listener.name.oauth.sasl.enabled.mechanisms"] == "OAUTHBEARER"


def test_listener_names_must_be_unique_and_not_reserved() -> None:
    for names in (["A", "a"], ["PLAINTEXT"], ["CONTROLLER"]):
        listeners = [kl.Listener(n, "SSL") for n in names]
        with pytest.raises(kl.KafkaLocalError, match="unique"):
            kl.listener_properties(1, 2, listeners, list(range(10, 10 + len(names))))


def test_scram_users_become_kafka_storage_arguments() -> None:
    assert kl.ScramUser("alice", "pw-1").storage_argument() == (
        "SCRAM-SHA-512=[name=alice,password=pw-1]")
    assert kl.ScramUser("bob", "x", "SCRAM-SHA-256").storage_argument().startswith(
        "SCRAM-SHA-256=[")
    with pytest.raises(kl.KafkaLocalError):
        kl.ScramUser("alice", "a,b").storage_argument()
