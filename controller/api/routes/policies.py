"""/v1/policies: read all; replace one kind (validated; an invalid policy leaves the old one)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body

from controller.api.deps import AdminP, Authenticated, ControllerDep, OpsP
from controller.policies import POLICY_KINDS

router = APIRouter(prefix="/v1/policies", tags=["policies"], dependencies=[Authenticated])


@router.get("")
def get_policies(ctl: ControllerDep, _: OpsP) -> dict[str, Any]:
    return {
        "kinds": sorted(POLICY_KINDS),
        **{kind: getattr(ctl.policies, kind).model_dump(mode="json") for kind in POLICY_KINDS},
    }


@router.put("/{kind}")
def put_policy(
    kind: Literal["residency", "placement", "failover", "quota"],
    ctl: ControllerDep,
    who: AdminP,
    body: Any = Body(...),
) -> dict[str, Any]:
    model, version = ctl.policy.put(kind, body, who.audit_row("policy.changed", f"policy/{kind}"))
    return {"kind": kind, "version": version, "policy": model.model_dump(mode="json")}
