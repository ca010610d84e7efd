"""The ``thrifty`` command line.

    thrifty train [--config FILE] [--workload fmnist-cnn] [--method NAME --method-arg K=V] ...
    thrifty train --resume runs/NAME
    thrifty methods
    thrifty prune --method PRUNER --from RUN --out DIR
    thrifty demo

Every :class:`~thrifty.engine.config.RunConfig` field is a ``train`` flag; a config file
(YAML or TOML) sets the same names, and flags given on the command line win over it.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from thrifty.engine.config import WORKLOADS, RunConfig, load_yaml

_SKIP = {"method_args", "method", "model_args"}
WORKLOAD_HELP = (f"a standard workload ({', '.join(WORKLOADS)}) or your own: FILE.py:FUNCTION "
                 "or package.module:FUNCTION returning a thrifty.Workload")


def _parse_kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, _, value = text.partition("=")
    try:
        return key.strip(), load_yaml(value, f"{key.strip()}=")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a run folder or checkpoint, got an empty "
                                         "path")
    return text


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field; defaults are suppressed so that only given flags
    override the config file."""
    group = parser.add_argument_group("run options (also valid as config-file keys)")
    for f in dataclasses.fields(RunConfig):
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        t = str(f.type)
        if t.startswith("bool"):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif t.startswith("list[int]"):
            group.add_argument(flag, nargs="+", type=int, metavar="N", **kw)
        elif t.startswith("int"):
            group.add_argument(flag, type=int, metavar="N", **kw)
        elif t.startswith("float"):
            group.add_argument(flag, type=float, metavar="X", **kw)
        else:
            group.add_argument(flag, type=str, metavar="NAME", **kw)
    group.add_argument("--method", action="append", dest="method", default=argparse.SUPPRESS,
                       metavar="NAME", help="data-reduction method by name; repeat (or join "
                       "with +, e.g. infobatch+stale-sb) to combine one per place (see "
                       "`thrifty methods`) (default: none, the baseline)")
    group.add_argument("--method-arg", action="append", dest="method_args", type=_parse_kv,
                       default=argparse.SUPPRESS, metavar="[METHOD.]KEY=VALUE",
                       help="a method hyper-parameter, e.g. alpha=0.8 or rpc.alpha=0.8")
    group.add_argument("--model-arg", action="append", dest="model_args", type=_parse_kv,
                       default=argparse.SUPPRESS, metavar="KEY=VALUE",
                       help="a model hyper-parameter, e.g. hidden=[256,128] for mlp (values "
                       "are YAML)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thrifty", description="Train on less: data-efficient training for PyTorch, "
        "with every unit of work counted.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of "
                        "an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train one model (optionally with a data-reduction method)",
        description="Train one run and write runs/NAME/result.json and checkpoint.pt. "
        "Precedence: defaults < --workload preset < --config file < flags. Ctrl-C (SIGINT) "
        "or SIGTERM saves a checkpoint; --resume continues it exactly.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--config", metavar="FILE", help="YAML or TOML file of run options")
    train.add_argument("--resume", metavar="RUN", type=_nonempty,
                       help="continue the run saved in RUN (a run folder or its "
                       "checkpoint.pt); other options are ignored")
    add_config_arguments(train)

    methods = sub.add_parser("methods", help="list the methods (data reduction and pruning) "
                             "by the place they act in; with a NAME, its hyper-parameters")
    methods.add_argument("name", nargs="?", help="a method: print each hyper-parameter with "
                         "its default, accepted values and meaning")

    reduce = sub.add_parser(
        "reduce", help="build and inspect an IDS registry (offline reduction) for a dataset",
        description="Embed the training set, build the IDS registry (per-class order by "
        "distance to the class prototype), save it, print the class balance that --alpha and "
        "--mode keep and the preparation time, and save a plot of the distances of every "
        "class. Options are checked before any data is loaded or embedded. "
        "Train on it later with --method ids --method-arg registry=OUT/registry.pt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    reduce.add_argument("--config", metavar="FILE", help="YAML/TOML run options (dataset, "
                        "model, ... as for train)")
    reduce.add_argument("--embedder", default="snapshot",
                        choices=["snapshot", "pixels", "torchvision"],
                        help="snapshot: warm-up of the run's model (download-free); pixels: "
                        "PCA of the pixels; torchvision: a model with --weights")
    reduce.add_argument("--weights", dest="embed_weights", metavar="PATH",
                        help="weights file of the torchvision embedder (only with "
                        "--embedder torchvision)")
    reduce.add_argument("--arch", default="resnet18", help="torchvision embedder architecture")
    reduce.add_argument("--warmup-epochs", type=int, default=3, help="snapshot warm-up epochs")
    reduce.add_argument("--alpha", type=float, default=0.8, help="kept share to describe")
    reduce.add_argument("--mode", default="hard", choices=["easy", "hard"],
                        help="order to describe")
    reduce.add_argument("--single-prototype", action="store_true",
                        help="one prototype for the whole dataset (multi-label data); the "
                        "class balance is still printed when every sample has one label")
    reduce.add_argument("--out", default="reduce", metavar="DIR",
                        help="folder for registry.pt, distances.png and summary.json")
    reduce.add_argument("--workload", default=argparse.SUPPRESS, metavar="NAME",
                        help=WORKLOAD_HELP)
    for flag, kw in (("--dataset", {}), ("--data-root", {}), ("--model", {}),
                     ("--train-limit", {"type": int}), ("--seed", {"type": int})):
        reduce.add_argument(flag, default=argparse.SUPPRESS, **kw,
                            help="as for `thrifty train`")

    report = sub.add_parser("report", help="write an HTML and Markdown report with plots for "
                            "a benchmark folder")
    report.add_argument("results_dir", metavar="RESULTS_DIR", help="the --out folder of "
                        "`thrifty bench`")
    report.add_argument("--out", metavar="DIR", help="where to write report.html/report.md "
                        "(default: RESULTS_DIR)")

    bench = sub.add_parser(
        "bench", help="compare methods against paired baselines; print and save the table",
        description="Run every method and its baseline for every seed (interleaved), store "
        "one result per run under OUT/runs/, then print the comparison table and write "
        "OUT/table.csv and OUT/table.md. Finished runs are skipped and interrupted ones "
        "resumed when the same command runs again.")
    bench.add_argument("--config", metavar="FILE", help="YAML/TOML benchmark file: seeds, "
                       "runs (method strings or {label, method, method_args}), out_dir, and "
                       "any run option shared by all runs")
    bench.add_argument("--workload", metavar="NAME", help=WORKLOAD_HELP)
    bench.add_argument("--epochs", type=int, help="epochs of every run")
    bench.add_argument("--seeds", type=int, nargs="+", metavar="S", help="seeds (default: 0)")
    bench.add_argument("--method", action="append", metavar="SPEC", default=[],
                       help='a compared run, e.g. "adonis eta=2" or "rpc alpha=0.8"; optional '
                       '"LABEL:" prefix; repeatable. The baseline is always added.')
    bench.add_argument("--set", action="append", type=_parse_kv, default=[],
                       metavar="KEY=VALUE", help="any other run option shared by all runs, "
                       "e.g. --set train_limit=5000")
    bench.add_argument("--out", metavar="DIR", help="benchmark folder (default: bench)")
    bench.add_argument("--budgets", nargs="+", metavar="SHARE", help="budget baselines: "
                       "baselines trained for these shares of the epochs with the schedule "
                       "fully decayed, the equal-time frontier (default: the file's, else "
                       "0.25 0.5 0.75; 'none' for none)")
    bench.add_argument("--method-budgets", nargs="+", metavar="SHARE", help="also run every "
                       "method for these shares of the epochs, its schedules spanning the "
                       "shorter run (e.g. 0.5 0.75; default: the file's, else none)")
    bench.add_argument("--target-drop", type=float, metavar="PP", help="the plan's largest "
                       "accepted accuracy drop in percentage points (default: the file's, "
                       "else 0.5)")
    bench.add_argument("--executor", choices=["inprocess", "submitit"], default="inprocess",
                       help="inprocess (default): every run in this process; submitit: one "
                       "job per seed on SLURM when there is one, else local processes "
                       "(optional extra thrifty[submitit])")
    bench.add_argument("--max-parallel", type=_at_least_one, default=1, metavar="N",
                       help="submitit: "
                       "seed jobs running at once (default: 1)")
    bench.add_argument("--compact", action="store_true", help="print the short table (the "
                       "full one is always in OUT/table.csv and OUT/table.md)")
    bench.add_argument("--no-progress", action="store_true", help="no per-epoch progress bars")

    tune = sub.add_parser(
        "tune", help="search methods, hyper-parameters and budgets (Optuna, optional extra "
        "thrifty[tune]); confirm the best on 3 seeds",
        description="Optuna's multi-objective search (accuracy against reference cost): each "
        "trial one thrifty run at the search seed; the equal-time frontier first, the Pareto "
        "set and the frontier in OUT/pareto.png, then the best few re-run on the "
        "confirmation seeds as a benchmark whose plan (OUT/bench/plan.md) is the answer. "
        "The same command continues a killed search.")
    tune.add_argument("--workload", metavar="NAME", help=WORKLOAD_HELP)
    tune.add_argument("--epochs", type=int, help="epochs of a full run")
    tune.add_argument("--set", action="append", type=_parse_kv, default=[],
                      metavar="KEY=VALUE", help="any other run option")
    tune.add_argument("--trials", type=_at_least_one, default=20, metavar="N",
                      help="completed trials (default: 20)")
    tune.add_argument("--methods", nargs="+", metavar="NAME", help="methods searched "
                      "(default: infobatch random-adaptive stale-sb)")
    tune.add_argument("--shares", nargs="+", type=float, metavar="SHARE", help="shares of the "
                      "epochs searched, in (0, 1] (default: 0.5 0.75 1)")
    tune.add_argument("--seed", type=int, default=0, help="search seed (default: 0)")
    tune.add_argument("--confirm", type=int, default=3, metavar="K", help="Pareto "
                      "configurations re-run on the confirmation seeds (default: 3; 0: none)")
    tune.add_argument("--confirm-seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S",
                      help="seeds of the confirmation benchmark (default: 0 1 2)")
    tune.add_argument("--out", default="tune", metavar="DIR", help="folder (default: tune)")

    add_prune_parser(sub)

    demo = sub.add_parser("demo", help="the README's main command: a small `thrifty bench` "
                          "on Fashion-MNIST (baseline vs the strongest available methods), "
                          "with the table and the report")
    # 8 epochs on a quarter of the data: as many samples trained as 4 epochs on half, and
    # the `fast` recipe (half the epochs) long enough for InfoBatch to prune
    demo.add_argument("--epochs", type=int, default=8, help="epochs (default: 8)")
    demo.add_argument("--train-limit", type=int, default=15000, metavar="N",
                      help="train on a fixed random N of the 60,000 training samples "
                      "(default: 15000; 0: all)")
    demo.add_argument("--out", default="bench/demo", help="results folder (default: bench/demo)")
    demo.add_argument("--fresh", action="store_true", help="delete earlier demo results first")
    return parser


def add_prune_parser(sub) -> None:
    """The ``prune`` subcommand: single-shot pruning of a trained model (seed 003).

    The pruner names and their options are resolved through the method registry when the
    command runs (:mod:`thrifty.methods`, place ``pruner``), not here.

    Args:
        sub: the subparsers of the ``thrifty`` parser.
    """
    prune = sub.add_parser(
        "prune", help="prune a trained model once with a pruner (see `thrifty methods`) and "
        "write masks to retrain with",
        description="Read a trained model, score its connections and write OUT/masks.pt, "
        "OUT/weights.pt and OUT/prune.json, then print a per-layer table and the `thrifty "
        "train --weights ... --masks ...` command that retrains it once.")
    prune.add_argument("--method", required=True, metavar="NAME",
                       help="a pruner by name (`thrifty methods` lists them under pruner)")
    prune.add_argument("--from", dest="source", required=True, metavar="PATH",
                       help="a run folder (runs/NAME), its checkpoint.pt, or a weights file "
                       "(state dict; then give --workload or --model/--dataset)")
    prune.add_argument("--method-arg", action="append", dest="method_args", type=_parse_kv,
                       default=[], metavar="KEY=VALUE",
                       help="a hyper-parameter of the pruner, e.g. delta=0.6, "
                       "sparsity=0.5, match=DIR/prune.json, skip=fc2 or skip=[fc1,fc2], "
                       "gamma=\"{fc1: 0.5, fc2: 0.3}\" (repeatable; values are YAML; a wrong "
                       "name lists the pruner's options; see docs/methods/NAME.md)")
    prune.add_argument("--out", metavar="DIR", help="output folder (default: prune/METHOD)")
    prune.add_argument("--workload", default=None, metavar="NAME", help=WORKLOAD_HELP
                       + " (default: the checkpoint's)")
    for flag in ("--model", "--dataset", "--data-root"):
        prune.add_argument(flag, default=None, help="as for `thrifty train` (default: the "
                           "checkpoint's)")
    prune.add_argument("--model-arg", action="append", dest="model_args", type=_parse_kv,
                       default=None, metavar="KEY=VALUE", help="a model hyper-parameter, "
                       "as for `thrifty train` (default: the checkpoint's)")
    prune.add_argument("--no-eval", action="store_true", help="skip measuring the test "
                       "accuracy before/after pruning")
    prune.add_argument("--no-progress", action="store_true", help="no progress bar")


def _cmd_prune(args: argparse.Namespace) -> int:
    from thrifty.pruning.command import format_table, prune_command

    out = Path(args.out or f"prune/{args.method}")
    overrides = {k: getattr(args, k) for k in ("workload", "model", "dataset", "data_root")}
    overrides["model_args"] = dict(args.model_args) if args.model_args else None
    report, command = prune_command(args.method, args.source, out, dict(args.method_args),
                                    overrides, evaluate=not args.no_eval,
                                    progress=not args.no_progress and sys.stderr.isatty())
    print(format_table(report))
    for warning in report.get("warnings", []):
        print(f"thrifty: warning: {warning}", file=sys.stderr)
    print(f"masks: {out / 'masks.pt'}\nreport: {out / 'prune.json'}\nretrain once:\n  "
          f"{command}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from thrifty.engine.config import make_config  # errors before PyTorch is imported
    from thrifty.methods import training_methods

    cfg = None
    if not args.resume:
        overrides = {k: v for k, v in vars(args).items()
                     if k not in ("command", "config", "resume", "debug")}
        for key in ("method_args", "model_args"):
            if key in overrides:
                overrides[key] = dict(overrides[key])
        cfg = make_config(overrides, args.config)
        training_methods(cfg.method)  # unknown names and pruners: refused before any data
    from thrifty.engine import Trainer, TrainingInterrupted

    trainer = Trainer(cfg) if cfg is not None else Trainer.resume(args.resume)
    try:
        result = trainer.fit()
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 128 + (exc.signum or signal.SIGINT)
    if not trainer.dist.is_main:  # under torchrun rank 0 reports
        return 0
    final = result["final"]
    ranks = f" ({trainer.dist.world_size} processes)" if trainer.dist.enabled else ""
    print(f"done{ranks}: test accuracy {100 * final['test_accuracy']:.2f}%, train time "
          f"{final['train_time']:.1f}s, {final['samples_trained']} samples trained, "
          f"{final['optimizer_steps']} steps\nresult: {trainer.run_dir / 'result.json'}\n"
          f"checkpoint: {trainer.run_dir / 'checkpoint.pt'}")
    return 0


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{option} takes numbers (shares of the epochs, e.g. 0.5) or "
                         f"'none', got {text!r}") from None


def _cmd_bench(args: argparse.Namespace) -> int:
    from thrifty.bench.spec import load_bench_spec  # errors before PyTorch is imported

    overrides = dict(args.set)
    for key in ("workload", "epochs"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.no_progress:
        overrides["progress"] = False
    budgets = ... if args.budgets is None else (
        None if args.budgets == ["none"] else [_number(b, "--budgets") for b in args.budgets])
    method_budgets = ... if args.method_budgets is None else (
        None if args.method_budgets == ["none"] else
        [_number(b, "--method-budgets") for b in args.method_budgets])
    spec = load_bench_spec(args.config, overrides=overrides, seeds=args.seeds,
                           methods=args.method, out_dir=args.out, budgets=budgets,
                           method_budgets=method_budgets,
                           target_drop=... if args.target_drop is None else args.target_drop)
    from thrifty.bench import run_bench, to_text
    from thrifty.bench.runner import failed_runs, summarize
    from thrifty.bench.table import to_compact_text
    from thrifty.engine import TrainingInterrupted

    try:
        if args.executor == "submitit":
            from thrifty.bench.executor import run_bench_submitit

            out = run_bench_submitit(spec, max_parallel=args.max_parallel)
        else:
            out = run_bench(spec)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 128 + (exc.signum or signal.SIGINT)
    rows = summarize(spec, out["calibration"])
    print(to_compact_text(rows) if args.compact else to_text(rows))
    print(f"\ntables: {spec.out_dir}/table.csv, {spec.out_dir}/table.md; runs: "
          f"{spec.out_dir}/runs/\n")
    print((Path(spec.out_dir) / "plan.md").read_text().rstrip())
    print(f"\n(the plan: {spec.out_dir}/plan.md)")
    failed = failed_runs(spec)
    if failed:
        print(f"\n{len(failed)} run(s) failed (the same command retries them):\n  "
              + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


def _cmd_reduce(args: argparse.Namespace) -> int:
    from thrifty.data import dataset_labels
    from thrifty.data.tensor import limited
    from thrifty.engine import make_config
    from thrifty.engine.assembly import run_datasets
    from thrifty.engine.checkpoint import write_json
    from thrifty.offline.common import check_alpha, check_mode
    from thrifty.offline.embedders import make_embedder
    from thrifty.offline.inspect import build_registry, describe, plot_distances

    # refuse bad options before any work (a snapshot warm-up trains epochs first)
    alpha, mode = check_alpha(args.alpha), check_mode(args.mode)
    if args.embed_weights is not None and args.embedder != "torchvision":
        raise ValueError(f"--weights is only used by --embedder torchvision, not "
                         f"{args.embedder}; add --embedder torchvision (or drop --weights)")
    overrides = {k: getattr(args, k) for k in ("workload", "dataset", "data_root", "model",
                                                "train_limit", "seed") if hasattr(args, k)}
    cfg = make_config(overrides, args.config)
    options: dict[str, Any] = {}
    if args.embedder == "snapshot":
        options = {"config": cfg, "warmup_epochs": args.warmup_epochs}
    elif args.embedder == "torchvision":
        options = {"weights": args.embed_weights, "arch": args.arch}
    embedder = make_embedder(args.embedder, **options)  # checks weights/epochs up front
    train, _ = run_datasets(cfg)
    train = limited(train, cfg.train_limit, seed=cfg.seed)
    out = Path(args.out)
    registry = build_registry(train, embedder, per_class=not args.single_prototype,
                              path=out / "registry.pt")
    # the class balance is printed whenever the data have one class per sample, also with
    # a single prototype (multi-label or label-less data: totals only)
    try:
        labels = dataset_labels(train)
    except ValueError:
        labels = None
    if labels is not None and (labels.dim() != 1 or len(labels) != registry.num_samples):
        labels = None
    summary = describe(registry, labels, alpha, mode)
    plot = plot_distances(registry, out / "distances.png")
    write_json(out / "summary.json", summary)
    print(f"IDS registry of {summary['total']} samples ({summary['embedder']} embeddings), "
          f"built in {summary['prep_time']:.2f}s"
          + (", one prototype for the whole dataset" if args.single_prototype else ""))
    print(f"alpha={summary['alpha']} mode={summary['mode']}: keeps {summary['kept']} "
          f"({100 * summary['share']:.1f}%)")
    for c, v in summary.get("per_class", {}).items():
        print(f"  class {c:>3}: {v['before']:>6} -> {v['after']:>6}")
    groups = len(registry.groups)
    drawn = f"all {groups} classes" if registry.per_class else "one group"
    print(f"registry: {out / 'registry.pt'}\nplot: {plot} ({drawn})\n"
          f"summary: {out / 'summary.json'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from thrifty.bench.report import write_report

    paths = write_report(args.results_dir, args.out)
    print(f"report: {paths['html']} and {paths['markdown']}")
    return 0


def _cmd_methods(name: str | None = None) -> int:
    """Print every registered method, grouped by place, with what the place does; with a
    name, that method's hyper-parameters (default, accepted values, meaning)."""
    from thrifty.methods import (
        PLACE_COMMANDS,
        PLACE_NOTES,
        PLACES,
        declared_methods,
        describe_method,
    )
    from thrifty.recipes import RECIPES

    if name is not None and name in RECIPES:
        r = RECIPES[name]
        print(f"{r.name} (recipe): {r.summary}\n  runs as: {r.describe()}\n"
              f"  measured: {r.card}\n  flags you give win over the recipe's")
        return 0
    if name is not None:
        print(describe_method(name))
        return 0
    methods = declared_methods()  # read from the source: no PyTorch import for a listing
    width = max(map(len, methods)) + 2
    blocks = []
    for place in PLACES:
        names = [n for n, (p, _) in methods.items() if p == place]
        if names:
            lines = [f"{place}: {PLACE_NOTES[place]} ({PLACE_COMMANDS[place]})"]
            lines += [f"  {n:<{width}}{place:<10}{methods[n][1]}" for n in names]
            blocks.append("\n".join(lines))
    lines = ["recipe: measured method choices, usable as --method NAME in train and bench"]
    lines += [f"  {r.name:<{width}}{'recipe':<10}{r.summary}" for r in RECIPES.values()]
    blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    return 0


# The demo compares the baseline with these runs: an epoch-level method, a batch-level one,
# and the `fast` recipe, InfoBatch for half the epochs (docs/methods/fast.md); those whose
# method is not available are left out. Sized (8 epochs on a fixed 15,000-sample quarter of
# the training set) to finish in under 10 minutes on 2 CPU cores from a fresh clone.
DEMO_RUNS = ["infobatch prune_ratio=0.5", "stale-sb", "fast"]


def _cmd_demo(args: argparse.Namespace) -> int:

    from thrifty.bench import load_bench_spec, run_bench
    from thrifty.bench.report import write_report
    from thrifty.bench.runner import clear_bench, summarize
    from thrifty.bench.table import to_compact_text
    from thrifty.methods import available_methods
    from thrifty.recipes import RECIPES

    known = available_methods()

    def available(name: str) -> bool:
        return all(m in known for m in (RECIPES[name].method if name in RECIPES else [name]))

    runs = [r for r in DEMO_RUNS if all(available(m) for m in r.split()[0].split("+"))]
    # no train-set statistics pass at the end: the demo does not show them
    limit = args.train_limit or None
    spec = load_bench_spec(overrides={"workload": "fmnist-cnn", "epochs": args.epochs,
                                      "train_limit": limit,
                                      "progress": sys.stderr.isatty(),
                                      "train_stats_every": -1},
                           seeds=[0], methods=runs, out_dir=args.out, budgets=[0.5])
    for run in spec.runs[:1]:
        spec.config(run, 0)  # every option checked before anything is removed
    if args.fresh:
        kept = clear_bench(Path(args.out))
        if kept:
            print(f"--fresh kept what thrifty did not write: {', '.join(map(str, kept))}")
    size = f"a fixed random {limit:,} of the 60k training samples" if limit else "60k"
    print(f"thrifty demo: fmnist-cnn (Fashion-MNIST {size}, 10k test, small CNN, batch 128), "
          f"{args.epochs} epochs, seed 0: baseline, the baseline trained for half the epochs "
          f"(the equal-time reference), and {', '.join(runs)}\n"
          f"results go to {args.out}/ (finished runs are reused; --fresh starts over)")
    run_bench(spec)
    rows = summarize(spec)
    print(to_compact_text(rows))
    paths = write_report(args.out)
    print(f"\ntables: {args.out}/table.md, {args.out}/table.csv\nreport: {paths['html']}\n")
    print((Path(args.out) / "plan.md").read_text().rstrip())
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from thrifty.engine.config import make_config

    base = dict(args.set)
    for key in ("workload", "epochs"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    make_config(dict(base))  # option errors before PyTorch and Optuna are imported
    from thrifty.bench.tune import DEFAULT_METHODS, DEFAULT_SHARES, tune

    out = tune(base, trials=args.trials, out_dir=args.out,
               methods=args.methods or DEFAULT_METHODS, shares=args.shares or DEFAULT_SHARES,
               seed=args.seed, confirm=args.confirm, confirm_seeds=args.confirm_seeds)
    print(f"\ntrials: {args.out}/trials.csv; plot: {args.out}/pareto.png")
    if out["plan"]:
        print("\n" + out["plan"].rstrip() + f"\n\n(the plan: {args.out}/bench/plan.md)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "methods":
            return _cmd_methods(args.name)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "tune":
            return _cmd_tune(args)
        if args.command == "reduce":
            return _cmd_reduce(args)
        if args.command == "prune":
            return _cmd_prune(args)
        return _cmd_demo(args)
    except KeyboardInterrupt:
        print("thrifty: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error is one line; --debug shows the traceback
        if args.debug:
            raise
        print(f"thrifty: error: {error_line(exc)}", file=sys.stderr)
        return 2


def error_line(exc: BaseException) -> str:
    """An error as one line for the user: the message (the file it concerns when the error
    names one), with the kind of error when it is not one of ours, and a full or read-only
    disk named as such."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full writing {exc.filename or 'a file'}: free space and run again"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {exc.filename or 'a file'} (read-only or not permitted): "
                "choose another --out-dir")
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ValueError, FileNotFoundError)):
        return text
    return f"{text} ({type(exc).__name__}; --debug shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())
