"""The declared-constraint vocabulary: every kind accepts, refuses and says why."""

import math

import numpy as np
import pytest

from thrifty.utils.params import Boolean, Interval, Options, Param, as_param, validate_params


def _check(spec, value, name="x", owner="Owner"):
    return validate_params(owner, {name: value}, {name: spec})[name]


def _refusal(spec, value, name="x", owner="Owner") -> str:
    with pytest.raises(ValueError) as info:
        _check(spec, value, name, owner)
    return str(info.value)


# ---------------------------------------------------------------------- Interval
@pytest.mark.parametrize("closed,accepted,refused", [
    ("both", [0, 0.5, 1], [-0.1, 1.1]),
    ("left", [0, 0.5], [1, -0.1]),
    ("right", [0.5, 1], [0, 1.1]),
    ("neither", [0.5], [0, 1]),
])
def test_interval_bounds_follow_closed(closed, accepted, refused):
    spec = Interval(float, 0, 1, closed=closed)
    for value in accepted:
        assert _check(spec, value) == value
    for value in refused:
        with pytest.raises(ValueError, match=f"got {value!r}"):
            _check(spec, value)


@pytest.mark.parametrize("closed,text", [("both", "in [0, 1]"), ("left", "in [0, 1)"),
                                         ("right", "in (0, 1]"), ("neither", "in (0, 1)")])
def test_interval_describes_its_brackets(closed, text):
    assert _refusal(Interval(float, 0, 1, closed=closed), 2) == \
        f"Owner: x must be {text}, got 2"


@pytest.mark.parametrize("spec,text", [
    (Interval(int, 1, None, closed="left"), "an integer >= 1"),
    (Interval(int, 0, None, closed="neither"), "an integer > 0"),
    (Interval(float, None, 5, closed="right"), "<= 5"),
    (Interval(float, None, 5, closed="neither"), "< 5"),
    (Interval(float, 0, math.inf, closed="left"), "a finite number >= 0"),
    (Interval(float, 0, None, closed="left"), ">= 0"),
    (Interval(float, 0, 0.999), "in [0, 0.999]"),
    (Interval(float, 0, 1, noun="a share"), "a share in [0, 1]"),
    (Interval(int, 1, None, closed="left", noun="a count"), "a count >= 1"),
    (Interval(float), "a number"),
])
def test_interval_descriptions(spec, text):
    assert spec.describe() == text


@pytest.mark.parametrize("value", [True, False, np.bool_(True), "1", None, [1]])
def test_a_bool_or_a_non_number_is_no_number(value):
    for kind in (int, float):
        with pytest.raises(ValueError, match="got"):
            _check(Interval(kind, None, None), value)


def test_float_interval_accepts_integers_and_numpy_scalars_and_converts_to_float():
    spec = Interval(float, 0, 10)
    for value in (3, 3.0, np.float32(3), np.int64(3)):
        out = _check(spec, value)
        assert out == 3.0 and type(out) is float


def test_nan_lies_in_no_interval_and_infinity_only_in_an_open_ended_one():
    for spec in (Interval(float, 0, 1), Interval(float, 0, None, closed="left"),
                 Interval(float)):
        with pytest.raises(ValueError, match="got nan"):
            _check(spec, math.nan)
    assert _check(Interval(float, 0, None, closed="left"), math.inf) == math.inf
    with pytest.raises(ValueError, match="a finite number >= 0, got inf"):
        _check(Interval(float, 0, math.inf, closed="left"), math.inf)


def test_int_interval_refuses_floats_unless_integral_floats():
    strict = Interval(int, 1, None, closed="left")
    assert _check(strict, 3) == 3
    assert _check(strict, np.int64(3)) == 3
    with pytest.raises(ValueError, match="x must be an integer >= 1, got 2.0"):
        _check(strict, 2.0)
    lenient = Interval(int, 1, None, closed="left", integral_floats=True)
    out = _check(lenient, 2.0)
    assert out == 2 and type(out) is int
    for value in (1.5, math.inf, math.nan):
        with pytest.raises(ValueError, match="must be an integer >= 1"):
            _check(lenient, value)


@pytest.mark.parametrize("value", [0, 1.5, "2", True, None])
def test_integer_at_least_one_refuses(value):
    """The cases of the retired ``check_int("x", value, 1)``."""
    spec = Interval(int, 1, None, closed="left", integral_floats=True)
    with pytest.raises(ValueError, match="x must be an integer >= 1"):
        _check(spec, value, owner="")


def test_interval_refuses_impossible_declarations():
    with pytest.raises(TypeError, match="int or float"):
        Interval(str, 0, 1)
    with pytest.raises(ValueError, match="closed must be one of"):
        Interval(float, 0, 1, closed="open")
    with pytest.raises(ValueError, match="low <= high"):
        Interval(float, 1, 0)
    with pytest.raises(ValueError, match="integral_floats"):
        Interval(float, 0, 1, integral_floats=True)


# ---------------------------------------------------------------------- Options
def test_options_accept_their_values_and_list_them_when_refusing():
    two, three = Options(str, ("carry", "drop")), Options(str, ("carry", "flush", "drop"))
    assert _check(two, "drop") == "drop"
    assert _refusal(two, "keep") == "Owner: x must be 'carry' or 'drop', got 'keep'"
    assert _refusal(three, "keep") == \
        "Owner: x must be one of 'carry', 'flush', 'drop', got 'keep'"
    assert _refusal(Options(str, ("only",)), 3) == "Owner: x must be 'only', got 3"


def test_options_keep_the_given_order_and_sort_a_set():
    assert Options(str, ("b", "a", "b")).options == ("b", "a")
    assert Options(str, {"b", "c", "a"}).describe() == "one of 'a', 'b', 'c'"


def test_options_ignore_case_converts_to_the_options_spelling():
    spec = Options(str, ("easy", "hard"), ignore_case=True)
    assert _check(spec, "EASY") == "easy" and _check(spec, "Hard") == "hard"
    with pytest.raises(ValueError, match="must be 'easy' or 'hard', got 'EASIER'"):
        _check(spec, "EASIER")
    assert _refusal(Options(str, ("easy", "hard")), "EASY").endswith("got 'EASY'")


def test_options_name_an_unknown_value_and_refuse_other_kinds():
    spec = Options(str, ("linear", "step"), what="ratio schedule")
    assert _refusal(spec, "spiral").endswith("got an unknown ratio schedule 'spiral'")
    assert _refusal(spec, 3).endswith("got 3")  # not a string: no "unknown schedule"
    with pytest.raises(ValueError):
        _check(spec, ["linear"])  # unhashable
    with pytest.raises(ValueError):
        _check(Options(int, (0, 1)), True)  # a bool is not an int option


def test_options_refuse_impossible_declarations():
    with pytest.raises(ValueError, match="at least one"):
        Options(str, ())
    with pytest.raises(TypeError, match="not of kind str"):
        Options(str, ("a", 1))
    with pytest.raises(ValueError, match="ignore_case"):
        Options(int, (1, 2), ignore_case=True)


# ---------------------------------------------------------------------- Boolean, None
@pytest.mark.parametrize("value", [0, 1, "yes", "true", None, np.bool_(True)])
def test_boolean_accepts_only_bools(value):
    assert _check(Boolean(), True) is True and _check(Boolean(), False) is False
    assert _refusal(Boolean(), value, "strict") == \
        f"Owner: strict must be true or false, got {value!r}"


def test_none_is_allowed_only_when_declared():
    spec = [Interval(float, 0, 1, closed="neither"), None]
    assert _check(spec, None) is None and _check(spec, 0.5) == 0.5
    assert _refusal(spec, 0) == "Owner: x must be in (0, 1) or None, got 0"
    with pytest.raises(ValueError, match="x must be a number, got None"):
        _check(Interval(float, 0, 1), None)


# ---------------------------------------------------------------------- messages
def test_message_names_owner_parameter_label_value_accepted_and_hint():
    spec = Param(Interval(float, 0, 1, closed="left"), label="r",
                 hint="0.5 is the paper's default")
    assert _refusal(spec, 1.5, "prune_ratio", "InfoBatch") == (
        "InfoBatch: prune_ratio (r) must be in [0, 1), got 1.5; 0.5 is the paper's default")


def test_a_value_of_the_wrong_type_is_first_told_the_type():
    spec = Param(Interval(float, 0, 1, closed="neither"), label="the PMF threshold")
    assert _refusal(spec, "high", "theta", "Adonis") == (
        "Adonis: theta must be a number, got 'high'; theta (the PMF threshold) must be in "
        "(0, 1)")
    # an integer interval already says "an integer": one sentence
    assert _refusal(Param(Interval(int, 1, None, closed="left"), label="R"), "3",
                    "period") == "Owner: period (R) must be an integer >= 1, got '3'"


def test_alternatives_are_joined_and_the_first_accepting_one_converts():
    spec = [Interval(int, 1, None, closed="left", integral_floats=True, noun="a count"),
            Interval(float, 0, 1, closed="neither", noun="a share")]
    assert _check(spec, 8.0) == 8 and type(_check(spec, 8.0)) is int
    assert _check(spec, 0.25) == 0.25
    assert _refusal(spec, 2.5, "k") == "Owner: k must be a count >= 1 or a share in (0, 1), got 2.5"
    assert _refusal(spec, True, "k").startswith("Owner: k must be a number, got True; ")


def test_an_empty_owner_leaves_out_the_prefix():
    assert _refusal(Interval(float, 0, 1), 2, owner="") == "x must be in [0, 1], got 2"


# ---------------------------------------------------------------------- validate_params
def test_validate_params_returns_converted_values_in_order():
    constraints = {"a": Interval(int, 0, None, closed="left", integral_floats=True),
                   "b": Interval(float, 0, 1), "c": Boolean(), "unused": Boolean()}
    out = validate_params("Owner", {"a": 3.0, "b": 1, "c": False}, constraints)
    assert out == {"a": 3, "b": 1.0, "c": False} and list(out) == ["a", "b", "c"]
    assert type(out["a"]) is int and type(out["b"]) is float


def test_validate_params_raises_on_the_first_refused_value():
    constraints = {"a": Interval(float, 0, 1), "b": Interval(float, 0, 1)}
    with pytest.raises(ValueError, match="a must"):
        validate_params("Owner", {"a": 2, "b": 2}, constraints)
    with pytest.raises(ValueError, match="b must"):
        validate_params("Owner", {"b": 2, "a": 2}, constraints)


def test_validate_params_refuses_an_undeclared_parameter():
    with pytest.raises(TypeError, match="no constraint is declared for parameter 'b'"):
        validate_params("Owner", {"b": 1}, {"a": Boolean()})


def test_declaration_entries_and_bad_constraints():
    assert as_param(Boolean()).constraints[0].describe() == "true or false"
    assert [c.describe() for c in as_param([Boolean(), None]).constraints] == \
        ["true or false", "None"]
    spec = Param(Boolean(), label="l")
    assert as_param(spec) is spec
    with pytest.raises(TypeError, match="a constraint is"):
        Param(bool)
    with pytest.raises(ValueError, match="at least one constraint"):
        Param()
