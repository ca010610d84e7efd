"""The one method registry: training-time places and pruners, built and refused by place."""

import dataclasses

import pytest
import torch
from torch import nn

from thrifty.methods import (
    PLACES,
    available_methods,
    build_method,
    build_pieces,
    get_method,
    register_method,
)
from thrifty.pruning import (
    MINT,
    SNACS,
    MagnitudePruning,
    MintConfig,
    RandomPruning,
    SnacsConfig,
    baseline_prune,
)

PRUNERS = {"magnitude": MagnitudePruning, "mint": MINT, "random": RandomPruning, "snacs": SNACS}


def test_pruners_are_registered_in_their_own_place():
    assert PLACES[-1] == "pruner"
    pruners = available_methods(("pruner",))
    assert {n: s.factory for n, s in pruners.items()} == PRUNERS
    assert all(s.place == "pruner" and s.summary for s in pruners.values())
    every = available_methods()
    assert set(PRUNERS) <= set(every) and "rpc" in every and "rpc" not in pruners


@pytest.mark.parametrize("name,config", [("mint", MintConfig), ("snacs", SnacsConfig)])
def test_pruner_hyper_parameters_come_from_the_factory_signature(name, config):
    params = get_method(name).params
    defaults = dataclasses.asdict(config())
    assert list(params) == list(defaults)
    assert {n: p.default for n, p in params.items()} == defaults
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())


def test_baseline_hyper_parameters_and_building_by_name():
    assert list(get_method("magnitude").params) == ["sparsity", "match", "skip", "seed"]
    mint = build_method("mint", {"delta": 0.5}, ("pruner",))
    assert isinstance(mint, MINT) and mint.config.delta == 0.5
    with pytest.raises(ValueError, match="has no hyper-parameter tau; it accepts: groups, "):
        build_method("mint", {"tau": 0.5})
    with pytest.raises(ValueError, match="exactly one of sparsity"):
        build_method("random", {})


def test_baseline_objects_prune_like_the_function():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    pruner = build_method("magnitude", {"sparsity": 0.5, "seed": 3}, ("pruner",))
    assert not pruner.needs_inputs
    got = pruner.prune(model)
    want = baseline_prune(model, "magnitude", sparsity=0.5, seed=3)
    assert got.masks.keys() == want.masks.keys()
    assert all(torch.equal(got.masks[k], want.masks[k]) for k in got.masks)
    assert got.report["method"] == "magnitude"


def test_build_pieces_refuses_a_pruner_and_points_to_thrifty_prune():
    with pytest.raises(ValueError, match=r"'mint' is a pruner .*not a training-time method: "
                                         r"prune a trained run with `thrifty prune --method "
                                         r"mint --from RUN --out DIR`"):
        build_pieces(["mint"], {})
    with pytest.raises(ValueError, match="thrifty prune --method snacs"):
        build_pieces(["rpc", "snacs"], {"rpc.alpha": 0.5})
    pieces = build_pieces(["rpc"], {"alpha": 0.5})  # training methods still build
    assert list(pieces) == ["reducer"] and pieces["reducer"].name == "rpc"


def test_unknown_names_and_wrong_places_list_what_is_available():
    pruners = ", ".join(available_methods(("pruner",)))
    with pytest.raises(ValueError) as err:
        get_method("nope", ("pruner",))
    assert str(err.value) == (f"unknown pruner 'nope'; available pruners: {pruners} "
                              "(see `thrifty methods`)")
    with pytest.raises(ValueError, match=r"'rpc' is a reducer .*not a pruner: train with it "
                                         r"through `thrifty train --method rpc`; available "
                                         rf"pruners: {pruners}"):
        build_method("rpc", {}, ("pruner",))
    with pytest.raises(ValueError, match="unknown method 'nope'; available: adonis") as err:
        build_pieces(["nope"], {})
    assert "mint" not in str(err.value)  # a training run lists training-time methods only


def test_register_method_names_the_places():
    with pytest.raises(ValueError, match="'reducer', 'sampler', 'selector', 'pruner'"):
        register_method("x", "trainer")


def test_one_place_may_be_given_as_a_string():
    assert available_methods("pruner") == available_methods(("pruner",))
    assert isinstance(build_method("snacs", {"tau": 0.3}, "pruner"), SNACS)
    with pytest.raises(ValueError, match="unknown place.*'prunr'.*places: reducer, sampler, "
                                         "selector, pruner"):
        available_methods("prunr")


def test_describe_method_lists_defaults_constraints_and_meanings(capsys):
    from thrifty.cli import main
    from thrifty.methods import describe_method, doc_args
    from thrifty.sampling import InfoBatch

    text = describe_method("infobatch")
    assert "prune_ratio = 0.5  [in [0, 1)" in text  # default and the declared constraint
    assert "the share of the well-learned samples dropped each epoch" in text  # docstring
    assert "thrifty train --method infobatch" in text
    meanings = doc_args(InfoBatch)
    assert set(meanings) >= {"prune_ratio", "delta", "schedule", "step_size"}
    assert meanings["delta"].startswith("share of the epochs in which pruning may happen")
    assert main(["methods", "stale-sb"]) == 0
    out = capsys.readouterr().out
    assert "staleness = 2" in out and "[an integer >= 1]" in out
    assert main(["methods", "mint"]) == 0 and "thrifty prune --method mint" in \
        capsys.readouterr().out


def test_doc_args_reads_grouped_and_continued_lines():
    from thrifty.methods import doc_args

    class Documented:
        """Summary.

        Args:
            a, b: two at once,
                continued here.
            c: one.

        Returns:
            nothing: not an argument.
        """

    assert doc_args(Documented) == {"a": "two at once, continued here.",
                                    "b": "two at once, continued here.", "c": "one."}


def test_the_listing_read_from_the_source_matches_the_registry():
    from thrifty.methods import available_methods, declared_methods

    declared = declared_methods()
    registered = {n: (s.place, s.summary) for n, s in available_methods().items()}
    assert declared == registered
