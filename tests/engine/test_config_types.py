"""One validation path for every way options enter: config files (YAML, TOML), bench
files, make_config and RunConfig. Wrong types are refused with the option, the file and
the fix; text is never taken for a truth value or a number; oversized files and YAML
aliases are refused before anything expands."""

from __future__ import annotations

import pytest

from thrifty.bench.spec import BenchSpec, MethodRun, load_bench_spec
from thrifty.engine import make_config
from thrifty.engine.config import MAX_CONFIG_BYTES, RunConfig

BASE = {"workload": "digits-mlp", "progress": False}


@pytest.mark.parametrize("text,match", [
    ('nesterov: "false"', "option 'nesterov' must be true or false.*without quotes"),
    ("milestones: abc", "option 'milestones' must be a list of int"),
    ("milestones: [10, x]", r"'x' is not"),
    ("epochs: true", "option 'epochs' must be a whole number"),
    ("epochs: ten", "option 'epochs' must be a whole number"),
    ("checkpoint_every: 0.5", "option 'checkpoint_every' must be a whole number"),
    ('seed: "abc"', "option 'seed' must be a whole number"),
    ("run_name: 5", "option 'run_name' must be text"),
    ("schedule: [cosine]", "option 'schedule' must be text"),
    ("batch_size: 64.5", "option 'batch_size' must be a whole number"),
    ("momentum: .nan", "option 'momentum' must be a finite number"),
    ("weight_decay: .inf", "option 'weight_decay' must be a finite number"),
    ("lr: '0.1'", "option 'lr' must be a number"),
    ("method_args: 3", "option 'method_args' must be a mapping"),
])
def test_config_files_refuse_wrong_types_naming_the_file(tmp_path, text, match):
    path = tmp_path / "run.yaml"
    path.write_text("workload: digits-mlp\n" + text + "\n")
    with pytest.raises(ValueError, match=match) as err:
        make_config(config_file=path)
    assert str(path) in str(err.value)


def test_toml_is_checked_the_same_and_its_syntax_errors_name_the_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('workload = "digits-mlp"\nnesterov = "false"\n')
    with pytest.raises(ValueError, match=f"{path}: option 'nesterov' must be true or false"):
        make_config(config_file=path)
    path.write_text("epochs = = 3\n")
    with pytest.raises(ValueError, match=f"{path}: not valid TOML"):
        make_config(config_file=path)


def test_make_config_and_runconfig_refuse_wrong_types_and_ranges():
    with pytest.raises(ValueError, match="option 'epochs' must be a whole number"):
        make_config({**BASE, "epochs": "3"})
    with pytest.raises(ValueError, match="option 'nesterov' must be true or false"):
        RunConfig(nesterov="yes").validate()
    for options, match in (({"threads": 0}, "threads must be at least 1"),
                           ({"num_workers": -1}, "num_workers must be 0 or more"),
                           ({"milestones": [-1]}, "milestones are epochs, 0 or more"),
                           ({"seed": -1}, r"seed must be in \[0, 2\*\*32\)"),
                           ({"seed": 2 ** 70}, r"seed must be in \[0, 2\*\*32\)"),
                           ({"momentum": 1.5}, r"momentum must be in \[0, 1\]")):
        with pytest.raises(ValueError, match=match):
            make_config({**BASE, **options})
    cfg = make_config({**BASE, "lr": 1, "amp": False})  # an int for a float; YAML's `off`
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.amp == "off"


def test_oversized_files_and_yaml_aliases_are_refused_before_parsing(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("epochs: 1\n" + "#" * MAX_CONFIG_BYTES)
    with pytest.raises(ValueError, match="too large for a config file"):
        make_config(config_file=big)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nmethod_args: {k: *c}\n')
    with pytest.raises(ValueError, match="aliases .* are not accepted"):
        make_config(config_file=bomb)
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1,\n")
    with pytest.raises(ValueError, match=f"{broken}, line 2: not valid YAML"):
        make_config(config_file=broken)


def test_bench_files_refuse_a_runs_mapping_scalar_seeds_and_bad_run_options(tmp_path):
    path = tmp_path / "bench.yaml"
    for text, match in (("runs: {rpc: {}}", "runs must be a list"),
                        ("seeds: 0", r"seeds must be a list .*seeds: \[0, 1, 2\]"),
                        ("seeds: [0, -1]", "seeds must be a list"),
                        ('epochs: "4"', "option 'epochs' must be a whole number"),
                        ("runs: [{method: rpc, alpha: 0.5}]", "a mapping with label, method")):
        path.write_text("workload: digits-mlp\n" + text + "\n")
        with pytest.raises(ValueError, match=match) as err:
            load_bench_spec(path)
        assert str(path) in str(err.value)


def test_labels_that_share_a_run_folder_are_refused_before_any_work():
    with pytest.raises(ValueError, match="map to one run folder"):
        BenchSpec(dict(BASE), [0], [MethodRun("A/B", ["rpc"], {"alpha": 0.5}),
                                    MethodRun("A B", ["rpc"], {"alpha": 0.9})])
