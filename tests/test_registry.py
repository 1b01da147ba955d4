"""Issue 18.8: workspace names are checked as whole strings, with a length limit, wherever they are validated."""

from __future__ import annotations

import pytest

from shiftlab.errors import InputError
from shiftlab.registry import MAX_NAME, check_name, dataset_path, register_model

BAD = ["evil\n", "evil\r\n", "ok\nevil", "\nevil", "evil\x00", "a b", " a", "a ", "a/b", "../a", ".hidden", "-a",
       "", "x" * (MAX_NAME + 1), "x" * 300, "é", "a\u2028b", "٣"]
GOOD = ["a", "A.b_c-1", "0", "x" * MAX_NAME, "imagenetv2-b-33"]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_in_one_line(name, tmp_path):
    with pytest.raises(InputError) as e:
        check_name(name)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300
    assert dataset_path(name, tmp_path / "ws") is None
    with pytest.raises(InputError):
        register_model(name, "world:mlp", tmp_path / "ws")


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name):
    assert check_name(name) == name


def test_the_other_whole_string_checks():
    from shiftlab.curate.revisions import parse_revision_name
    from shiftlab.data.classes import is_wnid

    assert is_wnid("n01440764") and not is_wnid("n01440764\n") and not is_wnid("n0144076٤")
    assert parse_revision_name("imagenetv2-b-33") == ("imagenetv2", "b", 33)
    for bad in ("imagenetv2-b-33\n", "imagenetv2-b-٣٣", "imagenetv2-d-33"):
        with pytest.raises(InputError):
            parse_revision_name(bad)
