"""Permission simulation confirmed live: call the running API with a key of each role and compare what
each golden field looks like (plain, masked, absent) with what the policy says it should."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import polars as pl


def _get(url: str, key: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """GET with a bearer key: (status, JSON body or {})."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return int(exc.code), {}


def observed_view(expected: Any, shown: Any, present: bool) -> str:
    """What a response shows of a value: none (left out), plain (equal to the stored value) or masked."""
    if not present:
        return "none"
    return "plain" if shown == expected else "masked"


def observable(value: Any) -> bool:
    """Whether a stored value can reveal its view (an empty value looks the same masked or not)."""
    return value not in (None, "", [])


def live_permission_check(
    base_url: str,
    keys: Mapping[str, str],
    customer_id: str,
    attributes: Mapping[str, Any],
    matrix: pl.DataFrame,
    reason: str = "compliance permission simulation",
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Read one customer with each role's key (and unmask where the policy allows) and compare with ``matrix``.

    ``attributes``: the customer's stored golden attributes (plain); ``matrix``: ``permission_matrix`` rows.
    Returns status ``confirmed`` or ``mismatch``, the mismatches, and what was observed per role.
    """
    base = base_url.rstrip("/") + "/v1/customers/" + urllib.parse.quote(customer_id)
    unmask = "?" + urllib.parse.urlencode({"unmask": "true", "reason": reason})
    observed: dict[str, dict[str, str]] = {}
    mismatches: list[dict[str, Any]] = []
    for role in [r for r in dict.fromkeys(matrix["role"].to_list()) if r in keys]:
        rows = matrix.filter(pl.col("role") == role)
        cases = [(role, "", dict(zip(rows["field"], rows["view"], strict=True)))]
        if rows["unmask"].any():
            wanted = rows.select("field", pl.when(pl.col("unmask")).then(pl.lit("plain")).otherwise("view"))
            cases.append((f"{role} (unmask)", unmask, dict(wanted.rows())))
        for label, query, expected in cases:
            status, doc = _get(base + query, keys[role], timeout)
            got = doc.get("attributes", {}) if status == 200 else {}
            seen: dict[str, str] = {}
            for name in expected:
                if name == "customer_id":
                    seen[name] = (
                        "plain" if status == 200 and doc.get("customer_id") == customer_id else "none"
                    )
                elif status != 200 or observable(attributes.get(name)):
                    seen[name] = observed_view(attributes.get(name), got.get(name), name in got)
            observed[label] = seen
            mismatches += [
                {"role": label, "field": n, "policy": expected[n], "api": v, "http": status}
                for n, v in seen.items()
                if v != expected[n]
            ]
    return {
        "status": "mismatch" if mismatches else "confirmed",
        "base_url": base_url,
        "customer_id": customer_id,
        "mismatches": mismatches,
        "observed": observed,
    }
