"""The shape key's constraints: the same text as pydantic's own serialization, for any valid
constraints (the key is also parsed back into ``Constraints`` for the plugins)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.jobs import Constraints, JobCreate
from controller.scheduler.shapes import Shape, constraints_json, shape_key

names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
label_keys = st.from_regex(r"[a-z][a-z0-9._/-]{0,15}[a-z0-9]", fullmatch=True)
label_values = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True) | st.just("")


@st.composite
def constraints(draw: st.DrawFn) -> Constraints:
    body = {
        "allow_clusters": draw(st.lists(names, max_size=5)),
        "deny_clusters": draw(st.lists(names, max_size=5)),
        "prefer_clusters": draw(st.lists(names, max_size=5)),
        "require_labels": draw(st.dictionaries(label_keys, label_values, max_size=3)),
        "prefer_labels": draw(st.dictionaries(label_keys, label_values, max_size=3)),
    }
    # only some fields given, as a client sends them
    given_fields = draw(st.sets(st.sampled_from(sorted(body))))
    return Constraints.model_validate({k: v for k, v in body.items() if k in given_fields})


@settings(max_examples=300, deadline=None)
@given(constraints())
def test_constraints_json_is_pydantics_text(c: Constraints) -> None:
    assert constraints_json(c) == c.model_dump_json()
    assert Constraints.model_validate_json(constraints_json(c)) == c


def test_a_shape_reads_back_its_jobs_constraints() -> None:
    spec = JobCreate.model_validate(
        {
            "name": "a",
            "tenant": "guangdong",
            "resources": {"cpu": 1, "memory_gib": 1},
            "constraints": {"deny_clusters": ["prov-hainan"], "prefer_labels": {"tier": "national"}},
        }
    )
    key = (*shape_key(spec, 100), None)
    assert key[3] == spec.constraints.model_dump_json()
    assert Shape(key, spec, 100).constraints == spec.constraints
