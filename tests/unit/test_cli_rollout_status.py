"""The CLI's rollout completeness reads the scheduler's `RolledOut` condition
(with `observed_generation >= generation`) and never derives it from the counts."""

from __future__ import annotations

from sutradhar.cli.deploy import ROLLED_OUT, _complete, _summary
from sutradhar.v1 import scheduler_pb2 as P

TRUE, FALSE = P.CONDITION_STATUS_TRUE, P.CONDITION_STATUS_FALSE


def _deployment(*, generation: int = 3, observed: int = 3, counts: int = 2, rolled_out: int | None = None,
                reason: str = "RolloutComplete") -> P.Deployment:
    d = P.Deployment(name="web", generation=generation)
    s = d.status
    s.observed_generation = observed
    s.desired_replicas = s.replicas = s.ready_replicas = s.updated_replicas = 2
    s.updated_replicas = counts
    s.current_revision = "abc123"
    if rolled_out is not None:
        s.conditions.add(type=ROLLED_OUT, status=rolled_out, reason=reason)  # type: ignore[arg-type]
    return d


def test_rolled_out_true_is_complete() -> None:
    d = _deployment(rolled_out=TRUE)
    assert _complete(d) and _summary(d) == "Available"


def test_rolled_out_false_is_not_complete_whatever_the_counts_say() -> None:
    # The counts match, but the scheduler says the rollout is still in progress (e.g. a replica of the
    # old revision counted as updated): the CLI trusts the scheduler, not its own arithmetic.
    d = _deployment(rolled_out=FALSE, reason="RolloutInProgress")
    assert not _complete(d) and _summary(d) == "Progressing"


def test_rolled_out_true_of_an_older_generation_does_not_count() -> None:
    d = _deployment(generation=4, observed=3, rolled_out=TRUE)  # written before the scheduler saw the new spec
    assert not _complete(d) and _summary(d) == "Progressing"


def test_rolled_out_true_even_when_counts_lag_behind() -> None:
    d = _deployment(counts=1, rolled_out=TRUE)
    assert _complete(d)


def test_a_status_without_the_condition_is_not_complete_whatever_the_counts_say() -> None:
    # The scheduler writes RolledOut on every status; the CLI does no arithmetic of its own.
    assert not _complete(_deployment())
    assert _summary(_deployment()) == "Progressing"
