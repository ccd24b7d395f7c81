"""The failover pre-flight's refusal (pure): no fault is injected when a warm-up completion failed
or came back from another service than the deployment's api_base names."""

from __future__ import annotations

from llmops.chaos.failover import warm_refusal
from llmops.warmup import Warmed


def w(dep: str, service: str, statuses: list[int | None], backends: list[str | None], error: str | None = None) -> Warmed:
    return Warmed(dep, len(statuses), statuses, 0.1, backends, error, service)


def test_all_routes_warm_means_no_refusal() -> None:
    assert warm_refusal([w("main-llm", "llm-main", [200], ["llm-main"]),
                         w("backup-llm", "llm-backup", [200], ["llm-backup"])], "litellm") is None


def test_a_rejected_warm_up_refuses_naming_deployment_service_and_reason() -> None:
    msg = warm_refusal([w("main-llm", "llm-main", [200], ["llm-main"]),
                        w("backup-llm", "llm-backup", [401], [None], "Authentication Error, invalid key")], "litellm")
    assert msg and msg.startswith("pre-flight: a completion through litellm to deployment backup-llm (llm-backup)")
    assert "401" in msg and "invalid key" in msg and msg.endswith("refusing to inject a fault")


def test_an_answer_from_the_wrong_service_refuses() -> None:
    msg = warm_refusal([w("main-llm", "llm-main", [200], ["llm-backup"])], "litellm")
    assert msg and "answered by llm-backup, not llm-main" in msg


def test_no_answer_at_all_refuses() -> None:
    assert warm_refusal([w("main-llm", "llm-main", [], [])], "litellm") is not None
