"""Addresses: abbreviations, implied province, structured parts, street names, detail notation."""

from __future__ import annotations

import polars as pl
import pytest

from mdm.standardize.addresses import standardize_addresses


@pytest.mark.parametrize(
    ("address", "parts", "province", "city", "district", "detail"),
    [
        (
            "北京朝阳望京街365号10号楼1单元1201室",
            (None, None, None),
            "北京市",
            "北京市",
            "朝阳区",
            "望京街365号10号楼1单元1201室",
        ),
        ("北京市西城区金融大街3号", (None, None, None), "北京市", "北京市", "西城区", "金融大街3号"),
        ("北京西城西单北大街170号", (None, None, None), "北京市", "北京市", "西城区", "西单北大街170号"),
        ("上海浦东世纪大道1号", (None, None, None), "上海市", "上海市", "浦东新区", "世纪大道1号"),
        ("广州天河体育西路52号", (None, None, None), "广东省", "广州市", "天河区", "体育西路52号"),
        (
            "徐汇区衡山路2号28-3-1701",
            (None, None, None),
            "上海市",
            "上海市",
            "徐汇区",
            "衡山路2号28号楼3单元1701室",
        ),
        (
            "青岛市南东海西路309号4-3-604",
            (None, None, None),
            "山东省",
            "青岛市",
            "市南区",
            "东海西路309号4号楼3单元604室",
        ),
        (
            "浙江省杭州市西湖区天目山路172号27号院22-5-1903",
            (None, None, None),
            "浙江省",
            "杭州市",
            "西湖区",
            "天目山路172号27号院22号楼5单元1903室",
        ),
        ("杭州南山路1号", (None, None, None), "浙江省", "杭州市", None, "南山路1号"),
        ("和平区滨江道133号", (None, None, None), None, None, "和平区", "滨江道133号"),
        ("和平区滨江道133号", ("天津市", "天津市", None), "天津市", "天津市", "和平区", "滨江道133号"),
        (
            "民族路90号28号楼3单元902室",
            ("湖北省", "武汉市", "武昌区"),
            "湖北省",
            "武汉市",
            "武昌区",
            "民族路90号28号楼3单元902室",
        ),
        ("北京西路392号", ("江苏省", "南京市", None), "江苏省", "南京市", None, "北京西路392号"),
        ("香港中路176号", ("山东省", "青岛市", None), "山东省", "青岛市", None, "香港中路176号"),
        ("南京路295号", ("天津市", "天津市", None), "天津市", "天津市", None, "南京路295号"),
        (
            "福田区益田路33号13栋1单元2404",
            ("广东", "深圳", None),
            "广东省",
            "深圳市",
            "福田区",
            "益田路33号13号楼1单元2404室",
        ),
        (None, ("浙江省", "杭州市", None), "浙江省", "杭州市", None, None),
        (
            "重庆市渝中区解放碑步行街72号",
            (None, None, None),
            "重庆市",
            "重庆市",
            "渝中区",
            "解放碑步行街72号",
        ),
    ],
)
def test_addresses(
    address: str | None,
    parts: tuple[str | None, str | None, str | None],
    province: str | None,
    city: str | None,
    district: str | None,
    detail: str | None,
) -> None:
    df = pl.DataFrame(
        {"address": [address], "province": [parts[0]], "city": [parts[1]], "district": [parts[2]]},
        schema={c: pl.String for c in ("address", "province", "city", "district")},
    )
    row = standardize_addresses(df).row(0, named=True)
    assert (row["addr_province"], row["addr_city"], row["addr_district"], row["addr_detail"]) == (
        province,
        city,
        district,
        detail,
    )
    municipal = city if city != province else None
    expected_std = "".join(p for p in (province, municipal, district, detail) if p)
    assert row["address_std"] == expected_std
    assert row["_flag_addresses"] == []


def test_text_conflicting_with_parts_is_flagged_and_text_wins() -> None:
    df = pl.DataFrame(
        {"address": ["海淀区中关村大街283号"], "province": ["四川省"], "city": ["成都市"], "district": [None]}
    )
    row = standardize_addresses(df.cast(pl.String)).row(0, named=True)
    assert (row["addr_province"], row["addr_district"]) == ("北京市", "海淀区")
    assert row["_flag_addresses"] == ["address:conflicts_with_parts"]
