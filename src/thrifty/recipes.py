"""Named recipes: a measured choice of methods, their hyper-parameters and how their
selection forwards run, usable wherever a method name is (``thrifty train --method fast``,
a ``thrifty bench`` run string ``"fast"``, ``method: fast`` in a config file).

A recipe holds only what a method choice decides: ``method``, ``method_args``, the run
options that change nothing a run without methods computes (the selection forwards'
precision and batch size), and ``share``: the share of the user's epochs it trains, every
per-epoch schedule spanning the shorter run (a method at a budget). The workload, schedule
and epochs stay the user's, so a recipe is compared with the baseline of the very same run
(the full one: a recipe at a share is credited with the whole saving and charged the whole
drop). Values given explicitly win over the recipe's (``--method fast --method-arg
infobatch.prune_ratio=0.3``).

Each recipe names the card that holds its measured numbers and the command that made them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The run options a recipe may set: they do not change what a run without methods
#: computes, so the recipe's run and its baseline differ only by the recipe.
RECIPE_OPTIONS = ("selection_amp", "forward_batch_size")


@dataclass(frozen=True)
class Recipe:
    """A named method configuration.

    Attributes:
        name: what ``--method`` takes.
        method: the method names it runs (one per place).
        method_args: their hyper-parameters (``METHOD.KEY``).
        options: run options among :data:`RECIPE_OPTIONS`.
        summary: one line for ``thrifty methods``.
        card: the documentation page with its measured numbers.
        share: the share of the run's epochs trained, in (0, 1]; the schedules span the
            shorter run (:func:`~thrifty.engine.config.budget_options`). Default 1.
    """

    name: str
    method: tuple[str, ...]
    method_args: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    card: str = ""
    share: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"recipe {self.name!r}: share must be in (0, 1], got "
                             f"{self.share}")
        bad = sorted(set(self.options) - set(RECIPE_OPTIONS))
        if bad:
            raise ValueError(f"recipe {self.name!r}: options {bad} would change the baseline "
                             f"too; a recipe sets only {', '.join(RECIPE_OPTIONS)}")
        if not self.method:
            raise ValueError(f"recipe {self.name!r} names no method")

    def describe(self) -> str:
        """The recipe spelled out as ``thrifty train`` flags."""
        words = ["--method " + "+".join(self.method)]
        words += [f"--method-arg {k}={v}" for k, v in self.method_args.items()]
        words += [f"--{k.replace('_', '-')} {v}" for k, v in self.options.items()]
        if self.share < 1:
            words.append(f"for {100 * self.share:g}% of the epochs (schedules spanning them)")
        return " ".join(words)


RECIPES: dict[str, Recipe] = {
    r.name: r for r in (
        Recipe(
            name="fast",
            method=("infobatch",),  # at its defaults: prune_ratio 0.5, delta 0.875
            share=0.5,
            summary="InfoBatch for half the epochs, every schedule spanning them: the one "
                    "configuration above the train-less frontier on every workload of the "
                    "transfer table (docs/methods/fast.md)",
            card="docs/methods/fast.md",
        ),
    )
}


def expand_recipe(explicit: dict[str, Any]) -> dict[str, Any]:
    """Replace a recipe name in ``explicit["method"]`` by what the recipe holds.

    Args:
        explicit: the option values given (a config file, flags), ``method`` already a list
            of names; they win over the recipe's. Unqualified method arguments (``beta``)
            must be written ``METHOD.KEY`` next to a recipe.

    Returns:
        A new dict with the recipe's methods, arguments and options filled in; without a
        recipe name, ``explicit`` unchanged.

    Raises:
        ValueError: a recipe combined with other methods (``fast+rpc``): a recipe already
            fills its places; name its methods instead. An unqualified method argument.
    """
    names = list(explicit.get("method") or [])
    hits = [n for n in names if n in RECIPES]
    if not hits:
        return explicit
    if len(names) > 1:
        recipe = RECIPES[hits[0]]
        raise ValueError(f"recipe {recipe.name!r} cannot be combined with other methods "
                         f"({'+'.join(names)}); it runs {'+'.join(recipe.method)}: name those "
                         "methods instead, with your additions")
    recipe = RECIPES[hits[0]]
    given = dict(explicit.get("method_args") or {})
    bare = sorted(k for k in given if "." not in k)
    if bare:
        raise ValueError(f"recipe {recipe.name!r} runs {'+'.join(recipe.method)}: write its "
                         f"arguments as METHOD.KEY, e.g. {recipe.method[-1]}.{bare[0]}="
                         f"{given[bare[0]]!r} (got {', '.join(bare)})")
    out = {**recipe.options, **explicit}
    out["method"] = list(recipe.method)
    out["method_args"] = {**recipe.method_args, **given}
    if recipe.share < 1:
        out[SHARE_KEY] = recipe.share  # make_config shortens the finished config
    return out


#: Where :func:`expand_recipe` leaves a recipe's share for ``make_config``.
SHARE_KEY = "_recipe_share"
