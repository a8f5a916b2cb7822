"""The SDK's label mapping → selector: keys and values follow the Kubernetes
label rules, so a value can never add requirements to the selector."""

from __future__ import annotations

import pytest

from sutradhar._clients import label_selector
from sutradhar._errors import InvalidArgument
from sutradhar._labels import parse_selector


def test_valid_mapping_becomes_an_equality_selector() -> None:
    text = label_selector({"tier": "gold", "sutradhar.io/deployment": "web", "canary": ""})
    assert text == "canary=,sutradhar.io/deployment=web,tier=gold"
    selector = parse_selector(text)
    assert selector.matches({"tier": "gold", "sutradhar.io/deployment": "web", "canary": ""})
    assert not selector.matches({"tier": "gold", "sutradhar.io/deployment": "web"})
    assert label_selector("tier in (a,b)") == "tier in (a,b)"  # a selector string passes through
    assert label_selector(None) == ""


@pytest.mark.parametrize(
    ("labels", "field", "what"),
    [
        ({"tier": "gold,env=dev"}, "labels['tier']", 'label value "gold,env=dev"'),
        ({"tier": "a b"}, "labels['tier']", "label value"),
        ({"tier": "x" * 64}, "labels['tier']", "label value"),
        ({"tier": "-gold"}, "labels['tier']", "label value"),
        ({"env!": "dev"}, "labels['env!']", "label key"),
        ({"a,b": "c"}, "labels['a,b']", "label key"),
        ({"": "c"}, "labels['']", "label key"),
        ({"Bad_Prefix/x": "c"}, "labels['Bad_Prefix/x']", "invalid prefix"),
    ],
)
def test_invalid_key_or_value_is_refused_naming_the_label(labels: dict[str, str], field: str, what: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        label_selector(labels)
    assert err.value.field == field
    assert str(err.value).startswith(field) and what in str(err.value)
