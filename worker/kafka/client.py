"""Kafka plumbing shared by the worker, `produce` and the tests.

One place turns `Settings` into what Faust and aiokafka each want (broker
list, TLS/SASL), and creates the topics, so the worker, the producer CLI and
the admin client can never disagree about security or partition counts.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from worker.settings import Settings

log = logging.getLogger("sessionwarden.kafka")

def bootstrap_servers(broker: str) -> str:
    """aiokafka's "h1:p1,h2:p2" from Faust's "kafka://h1:p1;h2:p2" (or a plain list)."""
    hosts: list[str] = []
    for part in broker.replace(";", ",").split(","):
        host = part.strip()
        if "://" in host:
            host = host.split("://", 1)[1]
        host = host.rstrip("/")
        if host:
            hosts.append(host)
    if not hosts:
        raise ValueError(f"no broker address in {broker!r}")
    return ",".join(hosts)


def faust_broker_url(broker: str) -> str:
    """Faust's "kafka://h1:p1;h2:p2" from either spelling."""
    return ";".join(f"kafka://{h}" for h in bootstrap_servers(broker).split(","))


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    from worker.kafka.auth.tls import ssl_context  # noqa: PLC0415

    return ssl_context(settings)


def _check_protocol(settings: Settings) -> str:
    """Validate the security settings (one line naming the variables) and fix aiokafka."""
    from worker.kafka import aiokafka_compat  # noqa: PLC0415
    from worker.kafka.auth.config import check_security  # noqa: PLC0415

    protocol = check_security(settings)
    aiokafka_compat.install()
    return protocol


def _password(settings: Settings) -> str | None:
    secret = settings.sasl_password
    return secret.get_secret_value() if secret is not None else None


def _token_provider(settings: Settings) -> Any:
    from worker.kafka.auth.providers import token_provider  # noqa: PLC0415

    return token_provider(settings)


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, admin) from Settings."""
    protocol = _check_protocol(settings)
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    context = _ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL") and settings.sasl_mechanism == "OAUTHBEARER":
        kwargs.update(sasl_mechanism="OAUTHBEARER",
                      sasl_oauth_token_provider=_token_provider(settings))
    elif protocol.startswith("SASL"):
        kwargs.update(sasl_mechanism=settings.sasl_mechanism or "PLAIN",
                      sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=_password(settings))
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """Faust's `broker_credentials` (None for PLAINTEXT) from Settings."""
    protocol = _check_protocol(settings)
    if protocol == "PLAINTEXT":
        return None
    import faust  # noqa: PLC0415

    context = _ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=_token_provider(settings), ssl_context=context)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=_password(settings),
                                 mechanism=settings.sasl_mechanism or "PLAIN",
                                 ssl_context=context)


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """The topics a deployment needs, with partitions and configs."""

    partitions: dict[str, int]
    configs: dict[str, dict[str, str]]


def topic_plan(settings: Settings, partitions: int | None = None) -> TopicPlan:
    """Input, outputs and DLQ with one partition count (co-partitioned by session id).

    Record size limits are set deliberately, not left to the broker default:
    the input and dead-letter topics accept `max_message_bytes` records (a
    poison message must reach the DLQ whole), the output topics
    `max_output_bytes` (the pipeline dead-letters a decision whose record
    would be larger, so nothing the worker sends can be refused for size).
    """
    n = partitions or settings.topic_partitions
    big = {"max.message.bytes": str(settings.max_message_bytes)}
    out = {"max.message.bytes": str(settings.max_output_bytes)}
    outputs = (settings.commands_topic, settings.audit_topic, settings.alerts_topic,
               settings.signals_topic, settings.signals_dlq_topic)
    names = (settings.input_topic, *outputs, settings.dlq_topic)
    configs = {settings.input_topic: dict(big), settings.dlq_topic: dict(big)}
    configs.update({name: dict(out) for name in outputs})
    return TopicPlan(partitions=dict.fromkeys(names, n), configs=configs)
