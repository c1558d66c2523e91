"""Names: simplified hanzi, surname readings, compound surnames, romanized order and syllables."""

from __future__ import annotations

import polars as pl
import pytest

from mdm.standardize.names import parse_name, split_syllables, standardize_names


@pytest.mark.parametrize(
    ("raw", "simplified", "pinyin", "surname", "given", "script"),
    [
        ("张伟", "张伟", "zhang wei", "张", "wei", "hanzi"),
        ("單雄信", "单雄信", "shan xiong xin", "单", "xiongxin", "hanzi"),
        ("曾帥", "曾帅", "zeng shuai", "曾", "shuai", "hanzi"),
        ("解晓东", "解晓东", "xie xiao dong", "解", "xiaodong", "hanzi"),
        ("区志明", "区志明", "ou zhi ming", "区", "zhiming", "hanzi"),
        ("仇敏", "仇敏", "qiu min", "仇", "min", "hanzi"),
        ("朴正", "朴正", "piao zheng", "朴", "zheng", "hanzi"),
        ("查良镛", "查良镛", "zha liang yong", "查", "liangyong", "hanzi"),
        ("盖伟", "盖伟", "ge wei", "盖", "wei", "hanzi"),
        ("乐嘉", "乐嘉", "yue jia", "乐", "jia", "hanzi"),
        ("覃海", "覃海", "qin hai", "覃", "hai", "hanzi"),
        ("万俟丽", "万俟丽", "moqi li", "万俟", "li", "hanzi"),
        ("尉迟恭", "尉迟恭", "yuchi gong", "尉迟", "gong", "hanzi"),
        ("长孙无忌", "长孙无忌", "zhangsun wu ji", "长孙", "wuji", "hanzi"),
        ("诸葛刚浩", "诸葛刚浩", "zhuge gang hao", "诸葛", "ganghao", "hanzi"),
        ("欧阳娜娜", "欧阳娜娜", "ouyang na na", "欧阳", "nana", "hanzi"),
        ("余 华", "余华", "yu hua", "余", "hua", "hanzi"),
        ("阿依·买买提", "阿依买买提", "a yi mai mai ti", "阿", "yimaimaiti", "hanzi"),
        ("張琪", "张琪", "zhang qi", "张", "qi", "hanzi"),
        ("Zhang Wei", None, "zhang wei", "zhang", "wei", "latin"),
        ("ZHANG WEI", None, "zhang wei", "zhang", "wei", "latin"),
        ("Leiying Zhang", None, "zhang lei ying", "zhang", "leiying", "latin"),
        ("Huiliang Yue", None, "yue hui liang", "yue", "huiliang", "latin"),
        ("Kangxin He", None, "he kang xin", "he", "kangxin", "latin"),
        ("WANG Ningjun", None, "wang ning jun", "wang", "ningjun", "latin"),
        ("Ningjun WANG", None, "wang ning jun", "wang", "ningjun", "latin"),
        ("Wang Fang", None, "wang fang", "wang", "fang", "latin"),
        ("zhang_l", None, "zhang l", "zhang", "l", "latin"),
        ("yuqianli", None, "yu qian li", "yu", "qianli", "latin"),
        ("zhugejunpeng", None, "zhuge jun peng", "zhuge", "junpeng", "latin"),
        ("Zhuge Junpeng", None, "zhuge jun peng", "zhuge", "junpeng", "latin"),
        ("Lyu Qiang", None, "lv qiang", "lv", "qiang", "latin"),
        ("张Wei", "张Wei", "zhang wei", "张", "wei", "mixed"),
    ],
)
def test_parse_name(
    raw: str, simplified: str | None, pinyin: str, surname: str, given: str, script: str
) -> None:
    p = parse_name(raw)
    assert (p.name_simplified, p.name_pinyin, p.surname, p.given_pinyin, p.name_script) == (
        simplified,
        pinyin,
        surname,
        given,
        script,
    )
    assert p.name_pinyin_sorted == "".join(sorted(pinyin.split()))


@pytest.mark.parametrize(
    ("left", "right"), [("张伟", "Wei Zhang"), ("张雷英", "Leiying Zhang"), ("吕强", "LYU Qiang")]
)
def test_sorted_key_is_order_and_script_insensitive(left: str, right: str) -> None:
    assert parse_name(left).name_pinyin_sorted == parse_name(right).name_pinyin_sorted


@pytest.mark.parametrize(
    ("word", "syllables"),
    [("leiying", ["lei", "ying"]), ("xian", ["xian"]), ("huiliang", ["hui", "liang"]), ("qqq", ["qqq"])],
)
def test_split_syllables(word: str, syllables: list[str]) -> None:
    assert split_syllables(word) == syllables


@pytest.mark.parametrize("raw", [None, "", "123"])
def test_no_name(raw: str | None) -> None:
    assert parse_name(raw).name_pinyin is None


def test_frame_path_matches_pure_function() -> None:
    df = pl.DataFrame({"name": ["曾帥", None, "Kangxin He", "曾帥"]})
    out = standardize_names(df)
    assert out["name_pinyin"].to_list() == ["zeng shuai", None, "he kang xin", "zeng shuai"]
    assert out["surname"].to_list() == ["曾", None, "he", "曾"]


def test_batched_pinyin_equals_one_call_per_name() -> None:
    names = [
        "曾帥",
        "单雄信",
        "诸葛刚浩",
        "张长青",
        "李乐乐",
        "王行",
        "石康頔",
        "余 华",
        "阿依·买买提",
        "张Wei",
        "Kangxin He",
    ]
    out = standardize_names(pl.DataFrame({"name": names}))
    expected = [parse_name(n).name_pinyin for n in names]
    assert out["name_pinyin"].to_list() == expected
    assert out["name_simplified"].to_list() == [parse_name(n).name_simplified for n in names]
