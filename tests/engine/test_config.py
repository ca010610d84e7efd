import pytest

from thrifty.engine import RunConfig, make_config
from thrifty.methods import build_pieces, split_method_args


def test_precedence_defaults_preset_file_overrides(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("workload: fmnist-cnn\nepochs: 4\nlr: 0.2\nmethod: rpc\n")
    cfg = make_config({"lr": 0.3}, f)
    assert cfg.dataset == "fashion-mnist" and cfg.batch_size == 128  # preset
    assert cfg.epochs == 4  # file over preset
    assert cfg.lr == 0.3  # override over file
    assert cfg.method == ["rpc"]
    assert RunConfig().epochs == 10


def test_toml_config(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('workload = "digits-mlp"\nbatch-size = 32\n')
    assert make_config(config_file=f).batch_size == 32


@pytest.mark.parametrize("overrides,msg", [
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"lr": -1.0}, "lr must be positive"),
    ({"amp": "fp8"}, "amp must be"),
    ({"workload": "mnist-huge"}, "unknown workload"),
    ({"epoch": 3}, "unknown config option"),
])
def test_bad_config(overrides, msg):
    with pytest.raises(ValueError, match=msg):
        make_config(overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        make_config(config_file=tmp_path / "nope.yaml")


def test_method_args_routing():
    assert split_method_args(["rpc"], {"alpha": 0.5}) == {"rpc": {"alpha": 0.5}}
    with pytest.raises(ValueError, match="ambiguous"):
        split_method_args(["rpc", "rpd"], {"alpha": 0.5})
    with pytest.raises(ValueError, match="not in this run"):
        split_method_args(["rpc"], {"rpd.alpha": 0.5})
    with pytest.raises(ValueError, match="both act as the reducer"):
        build_pieces(["rpc", "rpd"], {})


def test_default_run_name_marks_a_masked_retraining():
    from thrifty.engine import make_config

    assert make_config({"workload": "digits-mlp"}).default_run_name() == \
        "digits-mlp-baseline-s0"
    assert make_config({"workload": "digits-mlp", "masks": "m.pt"}).default_run_name() == \
        "digits-mlp-masked-baseline-s0"


def test_plus_joined_methods_are_split_as_in_benchmarks():
    # `--method infobatch+stale-sb` (the bench's spelling) equals two --method flags
    assert make_config({"method": ["infobatch+stale-sb"]}).method == ["infobatch", "stale-sb"]
    assert make_config({"method": "rpc + sb"}).method == ["rpc", "sb"]
    assert make_config({"method": ["rpc", "sb"]}).method == ["rpc", "sb"]
    assert RunConfig(method=["rpc+sb"]).validate().method == ["rpc", "sb"]
    with pytest.raises(ValueError, match="method names must be non-empty"):
        make_config({"method": "rpc+"})
