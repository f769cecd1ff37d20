"""marina.data.encoding: inputs expand to feature names, and columns encode to the one-hot matrix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from marina.data import encoding
from marina.data.encoding import EncodingError, Inputs, InputsError

RAW = [
    {"name": "age", "type": "number"},
    {"name": "colour", "type": "category", "categories": ["blue", "green", "red"]},
    {"name": "size", "type": "category", "categories": ["L", "S"]},
]
EXPANDED = ["age", "colour=blue", "colour=green", "colour=red", "size=L", "size=S"]


def test_expand_gives_numbers_then_each_category_in_order() -> None:
    assert encoding.expand(RAW) == EXPANDED
    inputs = Inputs.from_list(RAW)
    assert inputs.expanded_names() == EXPANDED
    assert inputs.n_features == 6
    assert inputs.names == ("age", "colour", "size")
    assert inputs.has_categories
    assert inputs.to_list() == RAW


def test_an_artifact_without_inputs_is_all_numbers() -> None:
    old = SimpleNamespace(inputs=[], feature_names=["a", "b"])
    inputs = Inputs.of(old)
    assert not inputs.has_categories
    assert inputs.to_list() == [{"name": "a", "type": "number"}, {"name": "b", "type": "number"}]
    matrix, unseen = inputs.encode([[1, 2], [3.5, 4.5]])
    assert matrix.tolist() == [[1.0, 3.5], [2.0, 4.5]]
    assert unseen == {}
    assert Inputs.of(SimpleNamespace(inputs=RAW, feature_names=EXPANDED)).expanded_names() == EXPANDED


def test_encode_one_hot_with_unseen_and_missing_as_zeros_and_counted() -> None:
    inputs = Inputs.from_list(RAW)
    matrix, unseen = inputs.encode(
        [
            [30, 40, 50, 60],
            ["red", "purple", None, "blue"],
            ["S", "L", "S", "M"],
        ]
    )
    assert matrix.dtype == np.float64
    assert matrix.tolist() == [
        [30, 0, 0, 1, 0, 1],
        [40, 0, 0, 0, 1, 0],
        [50, 0, 0, 0, 0, 1],
        [60, 1, 0, 0, 0, 0],
    ]
    assert unseen == {"colour": 2, "size": 1}


@pytest.mark.parametrize(
    "value",
    [
        "",  # the empty string is not the missing value
        "re",  # a prefix of a category
        "reds",  # sorts after the last category
        "a",  # sorts before the first
        "Red",  # case matters
        "red\x00",  # trailing NUL: numpy's fixed-width strings would drop it and match "red"
    ],
)
def test_near_misses_are_unseen(value: str) -> None:
    inputs = Inputs.from_list([{"name": "c", "type": "category", "categories": ["blue", "red"]}])
    matrix, unseen = inputs.encode([[value, "red"]])
    assert matrix.tolist() == [[0, 0], [0, 1]]
    assert unseen == {"c": 1}


def test_empty_string_can_be_a_category_and_none_is_still_missing() -> None:
    inputs = Inputs.from_list([{"name": "c", "type": "category", "categories": ["", "x"]}])
    matrix, unseen = inputs.encode([["", None, "x"]])
    assert matrix.tolist() == [[1, 0], [0, 0], [0, 1]]
    assert unseen == {"c": 1}


def test_numpy_columns_and_no_rows() -> None:
    inputs = Inputs.from_list(RAW)
    matrix, unseen = inputs.encode(
        [np.array([1.5]), np.array(["green"]), np.array(["L", None], dtype=object)[:1]]
    )
    assert matrix.tolist() == [[1.5, 0, 1, 0, 1, 0]]
    assert unseen == {"colour": 0, "size": 0}
    empty, none_unseen = inputs.encode([[], [], []])
    assert empty.shape == (0, 6)
    assert none_unseen == {"colour": 0, "size": 0}


def test_many_rows_encode_as_a_per_row_loop_would() -> None:
    categories = sorted({f"c{i}" for i in range(50)})
    inputs = Inputs.from_list([{"name": "c", "type": "category", "categories": categories}])
    rng = np.random.default_rng(0)
    values = [f"c{i}" for i in rng.integers(0, 70, size=5000)]
    matrix, unseen = inputs.encode([values])
    expected = np.array([[float(v == c) for c in categories] for v in values])
    assert np.array_equal(matrix, expected)
    assert unseen == {"c": sum(v not in categories for v in values)}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([[1, "2"], ["red", "red"], ["S", "S"]], "input 'age' row 1: must be a number, got string"),
        ([[1, None], ["red", "red"], ["S", "S"]], "input 'age' row 1: must be a number, got null"),
        ([[1, [2]], ["red", "red"], ["S", "S"]], "input 'age' row 1: must be a number, got array"),
        (
            [[1, 2], ["red", 7], ["S", "S"]],
            r"input 'colour' row 1: must be a string \(a category\) or null, got number",
        ),
        ([[1, 2], ["red", "red"], [True, "S"]], "input 'size' row 0: must be a string .* got boolean"),
        ([[1, 2], np.array([3, 4]), ["S", "S"]], "input 'colour' row 0: .* got number"),
        (
            [[1, 2], [["red"], ["red"]], ["S", "S"]],
            r"input 'colour' row 0: must be a string \(a category\) or null, got array",
        ),
        ([[1, 2], ["red"], ["S", "S"]], "input 'colour': 1 rows, but input 'age' has 2"),
    ],
)
def test_bad_columns_name_the_input_and_row(columns: list[Any], message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        Inputs.from_list(RAW).encode(columns)


def test_encoding_error_carries_its_parts_for_protocol_messages() -> None:
    with pytest.raises(EncodingError) as caught:
        Inputs.from_list(RAW).encode([[1, 2], ["red", 7], ["S", "S"]])
    assert (caught.value.input_name, caught.value.row) == ("colour", 1)
    assert caught.value.problem == "must be a string (a category) or null, got number"


def test_wrong_number_of_columns() -> None:
    with pytest.raises(ValueError, match=r"expected 3 columns \(age, colour, size\), got 2"):
        Inputs.from_list(RAW).encode([[1], ["red"]])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "a", "type": "number"}, "inputs: must be a list"),
        (
            [{"name": "a", "type": "number"}, {"name": "a", "type": "number"}],
            "names must be unique, repeated: a",
        ),
        ([["a", "number"]], r"inputs\[0\]: must be an object"),
        ([{"name": "", "type": "number"}], r"inputs\[0\]: name must be a non-empty string"),
        ([{"name": "a"}], r"inputs\[0\] \(a\): type must be 'number' or 'category', got None"),
        (
            [{"name": "a", "type": "number", "categories": ["x"]}],
            "unknown keys for a number input: categories",
        ),
        ([{"name": "a", "type": "category"}], "categories must be a non-empty list of strings"),
        ([{"name": "a", "type": "category", "categories": ["x", 1]}], "categories must all be strings"),
        ([{"name": "a", "type": "category", "categories": ["x", "x"]}], "sorted and unique"),
        ([{"name": "a", "type": "category", "categories": ["b", "a"]}], "sorted and unique"),
    ],
)
def test_malformed_inputs_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(InputsError, match=message):
        encoding.expand(raw)
