"""Named recipes (``--method fast``): expansion, precedence, refusals, bench and listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty.bench.spec import load_bench_spec
from thrifty.cli import main
from thrifty.engine.config import make_config
from thrifty.methods import build_pieces
from thrifty.recipes import RECIPES, Recipe, expand_recipe


def test_every_recipe_builds_its_pieces_and_names_a_card():
    for r in RECIPES.values():
        pieces = build_pieces(list(r.method), dict(r.method_args))
        assert [pieces[p].name for p in pieces if pieces[p].name in r.method] == list(r.method)
        assert (Path(__file__).parents[1] / r.card).is_file()


def test_make_config_expands_a_recipe_under_the_given_values():
    fast = RECIPES["fast"]
    cfg = make_config({"workload": "fmnist-cnn", "method": "fast"})
    assert cfg.method == list(fast.method)
    assert cfg.method_args == fast.method_args
    assert cfg.epochs == 5 and fast.share == 0.5  # half the workload's 10, cosine over 5
    mine = make_config({"workload": "fmnist-cnn", "method": ["fast"], "epochs": 8,
                        "schedule": "multistep", "milestones": [4, 6],
                        "method_args": {"infobatch.prune_ratio": 0.3}})
    assert mine.method_args["infobatch.prune_ratio"] == 0.3  # given values win
    assert fast.method_args == {}  # InfoBatch at its defaults, as the transfer table ran it
    assert (mine.epochs, mine.milestones) == (4, [2, 3])  # every schedule spans the 4


def test_a_recipe_in_a_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("workload: fmnist-cnn\nmethod: fast\nepochs: 4\n")
    cfg = make_config({}, path)
    assert cfg.method == list(RECIPES["fast"].method) and cfg.epochs == 2


def test_a_recipe_combined_with_a_method_is_refused():
    with pytest.raises(ValueError, match="cannot be combined.*name those methods"):
        expand_recipe({"method": ["fast", "rpc"]})
    assert expand_recipe({"method": ["rpc"]}) == {"method": ["rpc"]}


def test_a_recipe_may_not_change_the_baseline():
    with pytest.raises(ValueError, match="would change the baseline"):
        Recipe("bad", ("sb",), options={"batch_size": 256})
    with pytest.raises(ValueError, match="names no method"):
        Recipe("empty", ())
    with pytest.raises(ValueError, match="share must be in"):
        Recipe("long", ("sb",), share=1.5)


def test_own_loop_names_are_methods_not_recipes():
    from thrifty.integrations.own_loop import Thrift

    with pytest.raises(ValueError, match="'fast' is a recipe.*name its methods"):
        Thrift("fast", list(range(10)), epochs=1)


def test_bench_runs_a_recipe_against_the_plain_baseline():
    spec = load_bench_spec(overrides={"workload": "fmnist-cnn", "epochs": 2},
                           methods=["fast"], budgets="none")
    run = next(r for r in spec.runs if r.label == "fast")
    cfg = spec.config(run, 0)
    assert cfg.method == list(RECIPES["fast"].method) and cfg.epochs == 1
    assert spec.baseline_of()["fast"] == "baseline"  # the full run: charged the whole drop
    assert spec.config(spec.runs[0], 0).method == []


def test_methods_lists_and_describes_recipes(capsys):
    assert main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert "recipe:" in listing and "fast" in listing
    assert main(["methods", "fast"]) == 0
    text = capsys.readouterr().out
    assert "--method infobatch" in text and "for 50% of the epochs" in text
    assert RECIPES["fast"].card in text


@pytest.mark.parametrize("workload", ["digits-mlp", "tabular-mlp", "seq-cnn"])
def test_fast_is_the_configuration_its_card_measured(workload):
    """docs/methods/fast.md quotes the transfer table's "infobatch @ 50%" rows: the same
    run config as the recipe on each workload."""
    spec = load_bench_spec(Path(__file__).parents[1] / "benchmarks" / "transfer" /
                           f"{workload}.yaml")
    measured = next(r for r in spec.runs if r.label.startswith("infobatch @ 50%"))
    recipe = load_bench_spec(overrides=dict(spec.base), methods=["fast"], budgets="none")
    ours = next(r for r in recipe.runs if r.label == "fast")
    a, b = spec.config(measured, 0).to_dict(), recipe.config(ours, 0).to_dict()
    for d in (a, b):
        d.pop("run_name"), d.pop("out_dir")
    assert a == b


def test_unqualified_arguments_next_to_a_recipe_name_their_method():
    with pytest.raises(ValueError, match="write its arguments as METHOD.KEY.*infobatch.delta=0"):
        make_config({"workload": "fmnist-cnn", "method": "fast", "method_args": {"delta": 0}})


def test_prune_refuses_a_recipe_without_pointing_at_training_methods():
    from thrifty.methods import get_method

    with pytest.raises(ValueError, match="training recipe") as err:
        get_method("fast", "pruner")
    assert "Thrift(" not in str(err.value)


def test_a_config_file_option_beats_the_recipe(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("workload: fmnist-cnn\nmethod: fast\nmethod_args:\n"
                    "  infobatch.prune_ratio: 0.2\n")
    assert make_config({}, path).method_args["infobatch.prune_ratio"] == 0.2
