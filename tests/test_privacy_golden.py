"""The CLI's and demo's golden-record masking agrees with the API policy: every C2 golden field is
masked, with the policy's masker."""

from __future__ import annotations

import pytest

from api.policy import MASKERS, load_policy
from mdm.privacy import GOLDEN_MASKS, mask_golden

POLICY = load_policy()
C2_GOLDEN = sorted(f for f, c in POLICY.golden_fields.items() if c == "C2")


@pytest.mark.parametrize("field", C2_GOLDEN)
def test_every_c2_golden_field_has_the_policy_masker(field: str) -> None:
    assert GOLDEN_MASKS[field] is MASKERS[POLICY.maskers[field]]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"emails": [{"value": "zhangwei@qq.com"}]}, {"emails": ["z***@qq.com"]}),
        ({"addresses": ["北京市朝阳区建国路88号"]}, {"addresses": ["北京市朝阳区***"]}),
        ({"birth_date": "1985-03-07", "sex": "M"}, {"birth_date": "1985-**-**", "sex": "M"}),
        ({"name_pinyin": "zhang wei"}, {"name_pinyin": "z*******i"}),
    ],
)
def test_golden_values_are_masked(attributes: dict[str, object], expected: dict[str, object]) -> None:
    assert mask_golden(attributes) == expected
