"""The typed path from the command line to ``fit``: :class:`RunContext`, :class:`PairSpec`,
:func:`train_pair`, and ``--set`` overrides parsed against declared types.

A ``--set bbb.fit.epochs=200`` travels in three hops, all typed:

1. the CLI builds the experiment's config dataclass (``get_config(smoke)``) and
   :func:`apply_overrides` parses ``"200"`` against the declared type of ``PairSpec.fit.epochs``
   (``int``), rebuilding the :class:`~experiments.engine.settings.FitConfig` (which checks it);
2. the experiment's ``run(config, ctx)`` hands the :class:`PairSpec` ``config.bbb`` to
   :func:`train_pair`;
3. :func:`train_pair` builds model and guide and calls ``fit`` with ``spec.fit`` and the
   :class:`~experiments.engine.settings.RunOptions` made from what the :class:`RunContext` owns
   (seed, device, output folder, progress) and the fit's name in its progress bar and log lines
   (the arm's name and its index in the run, ``bbb #1``).

The run's seed, device, output folder and progress live only in the :class:`RunContext`:
``--set`` refuses them (``--seed``, ``--device``, ``--out``, ``--no-progress`` set them).
Values are checked against their declared types by :mod:`experiments.harness.typed`
(:func:`~experiments.harness.typed.coerce`, :class:`~experiments.harness.typed.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import guides
import models
from experiments.engine import distributed
from experiments.engine.loader import resolve_device
from experiments.engine.seeding import seed_everything
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.state import restore
from experiments.engine.training import fit, setup

from .typed import (
    ConfigError,
    Mismatch,
    check_kwargs,
    coerce,
    parse_text,
    signature_types,
    type_hints,
    type_name,
    value_error,
)

#: The fields of :class:`~experiments.engine.settings.RunOptions`: they belong to the run, not to an
#: arm, and are set from the RunContext; the value says what sets each
RUN_KEYS = {f.name: f.metadata["run"] for f in dataclasses.fields(RunOptions)}


@dataclass(frozen=True)
class RunContext:
    """Where and how one run happens; built once by the CLI (or a test) and passed to ``run``.

    :ivar seed: the run's seed: every random stream, module initialisation included, is seeded
        from it (:meth:`seed_everything`, :func:`train_pair`).
    :ivar device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"`` (checked when the context is made).
    :ivar out_dir: the run folder (figures, tables, each arm's history and checkpoint).
    :ivar data_dir: offline data folder (``None``: ``$VBZOO_DATA_DIR``, then the cache).
    :ivar progress: show progress bars.
    :ivar logger: the run's logger.
    :ivar resume: continue an interrupted run in ``out_dir``: :func:`train_pair` restores each
        arm from its ``checkpoint.pt`` when there is one (an arm that had finished is not trained
        again; one that had not started is trained from scratch).
    :ivar resume_allow: fit keys (of :data:`~experiments.engine.state.RESUME_OVERRIDABLE`)
        the user changed on resume on purpose (``--resume RUN_DIR --set ARM.fit.lr=...``):
        :func:`~experiments.engine.state.restore` accepts those differences.
    """

    seed: int = 0
    device: str = "auto"
    out_dir: Path = Path("results")
    data_dir: str | None = None
    progress: bool = True
    resume: bool = False
    resume_allow: tuple[str, ...] = ()
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("experiments"),
                                   compare=False)
    #: fits started so far in this run (:meth:`next_fit`)
    fits: list[int] = field(default_factory=lambda: [0], init=False, compare=False, repr=False)

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        resolve_device(self.device)  # a bad device is an error before anything runs
        object.__setattr__(self, "out_dir", Path(self.out_dir))

    @property
    def torch_device(self):
        return resolve_device(self.device)

    def seed_everything(self, offset: int = 0):
        """Seed python, numpy, torch and Pyro from ``seed + offset``; return a torch generator."""
        return seed_everything(self.seed + offset)

    def path(self, name: str) -> Path:
        return self.out_dir / name

    def next_fit(self) -> int:
        """1, 2, ...: the index of the fit about to start in this run (named in its progress bar
        and log lines)."""
        self.fits[0] += 1
        return self.fits[0]


@dataclass
class PairSpec:
    """One (model, guide) pair and how to train it: an arm or method of an experiment.

    :ivar model: registered model name (``python -m experiments pairs``).
    :ivar model_cfg: keyword arguments of the model (checked against its signature).
    :ivar guide: registered guide name for that model.
    :ivar guide_cfg: keyword arguments of the guide builder.
    :ivar fit: the :class:`~experiments.engine.settings.FitConfig` (the run's seed, device,
        out_dir, progress and desc, a :class:`~experiments.engine.settings.RunOptions`, come from
        the :class:`RunContext` and :func:`train_pair`).
    :cvar progress: ``False`` in a subclass whose fits never show a progress bar, even when the
        run does (a protocol of many short fits); not a config key.
    """

    progress: ClassVar[bool] = True

    model: str
    guide: str
    model_cfg: dict[str, Any] = field(default_factory=dict)
    guide_cfg: dict[str, Any] = field(default_factory=dict)
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self):
        if isinstance(self.fit, Mapping):
            self.fit = FitConfig.from_dict(dict(self.fit))

    def validate(self, where: str = "", provided: Sequence[str] = ()) -> None:
        """Check the names and every ``model_cfg`` / ``guide_cfg`` value against the signatures.

        :param provided: model arguments the experiment supplies itself (e.g. ``in_features``).
        """
        where = where or "pair"
        if self.model not in models.MODELS:
            raise ConfigError(f"{where}.model: unknown model {self.model!r}; registered: "
                              f"{', '.join(models.list_models())}")
        supported = guides.GUIDES.meta(self.guide)["models"] if self.guide in guides.GUIDES else ()
        if self.model not in supported:
            options = sorted(g for m, g in guides.list_pairs() if m == self.model)
            raise ConfigError(f"{where}.guide: {self.guide!r} is not a guide of {self.model!r}; "
                              f"use one of {options}")
        model_factory = models.MODELS.get(self.model)
        check_kwargs(model_factory, self.model_cfg, f"{where}.model_cfg", provided)
        check_kwargs(guides.guide_builder(self.guide, self.model), self.guide_cfg,
                      f"{where}.guide_cfg", ("model",))


def train_pair(spec: PairSpec, data, ctx: RunContext, name: str, *,
               eval_fn: Callable | None = None, model_args: dict | None = None,
               prepare: Callable | None = None, seed_offset: int = 0):
    """Build ``spec``'s model and guide and fit them on ``data``: ``(model, guide, state)``.

    Module initialisation is seeded (``ctx.seed + seed_offset``) right before the modules are
    built, so an arm's result depends on the seed and its spec alone, not on what ran before it.

    :param str name: the arm's subfolder of the run folder (history, checkpoint).
    :param dict model_args: model arguments the experiment supplies (``in_features``, ...).
    :param prepare: ``prepare(model, guide)`` after building, before fitting (inducing inputs,
        a Titsias start of q(u), ...).
    :param int seed_offset: e.g. the split index of a repeated protocol.
    """
    # seeded here as well as in setup (the same seed, ctx.seed + seed_offset): the modules are
    # built, and prepare() runs, before setup, and their initialisation draws from this stream;
    # removing this seeding would change the numbers
    ctx.seed_everything(seed_offset)
    model = models.create_model(spec.model, **{**spec.model_cfg, **(model_args or {})})
    guide = guides.create_guide(spec.guide, model, **spec.guide_cfg)
    if prepare is not None:
        prepare(model, guide)
    fit_cfg = spec.fit
    run = RunOptions(seed=ctx.seed + seed_offset, device=ctx.device, out_dir=str(ctx.path(name)),
                     progress=spec.progress and ctx.progress, desc=f"{name} #{ctx.next_fit()}")
    checkpoint = ctx.path(name) / "checkpoint.pt"
    state = None
    # [distributed] rank 0 decides whether to resume and every rank restores from its file
    resume_from = distributed.broadcast_object(
        str(checkpoint) if ctx.resume and checkpoint.is_file() else None)
    if resume_from is not None:
        checkpoint = Path(resume_from)
        state = restore(setup(model, guide, data, fit_cfg, run), checkpoint,
                        allow=ctx.resume_allow)
        ctx.logger.info("%s: resumed from %s at epoch %d of %d", name, checkpoint, state.epoch,
                        fit_cfg.epochs)
    state = fit(model, guide, data, fit_cfg, run, eval_fn=eval_fn, state=state)
    return model, guide, state


# ------------------------------------------------------------------------------------------------
# overrides


def apply_overrides(config, overrides: Sequence[str]):
    """A copy of the config dataclass ``config`` with ``a.b.c=value`` overrides applied, each value
    parsed against the declared type of its field (a model's or guide's keyword arguments against
    its signature; a key inside a free-form dict against the type of its default). Unknown keys,
    wrong types, run keys (seed, device, ...) and sections assigned a value are one-line
    :class:`ConfigError` s."""
    config = _deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not of the form key=value (e.g. "
                              "bbb.fit.epochs=5)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", key):
            raise ConfigError(f"--set {item!r}: {key!r} is not a dotted key such as bbb.fit.epochs")
        config = _set(config, key.split("."), text, key, factory=None)
    return config


def _deepcopy(config):
    import copy

    return copy.deepcopy(config)


def _set(node, parts: list[str], text: str, key: str, factory):
    part, rest = parts[0], parts[1:]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return _set_field(node, part, rest, text, key)
    if isinstance(node, dict):
        return _set_item(node, part, rest, text, key, factory)
    raise ConfigError(f"--set {key}={text}: {part!r} cannot be set inside "
                      f"{type_name(type(node))}")


def _set_field(node, part, rest, text, key):
    names = [f.name for f in dataclasses.fields(node)]
    if part in RUN_KEYS and (isinstance(node, FitConfig) or not rest):
        raise ConfigError(f"--set {key}: the {part} is the run's, not the config's; use "
                          f"{RUN_KEYS[part]}")
    if part not in names:
        raise ConfigError(f"--set {key}: unknown key {part!r} in {type(node).__name__}; valid "
                          f"keys: {', '.join(n for n in names if n not in RUN_KEYS)}")
    tp = type_hints(type(node)).get(part, Any)
    current = getattr(node, part)
    if not rest:
        if dataclasses.is_dataclass(tp) or dataclasses.is_dataclass(current):
            fields = ", ".join(f.name for f in dataclasses.fields(current)
                               if f.name not in RUN_KEYS)
            raise ConfigError(f"--set {key}={text}: {key} is a section "
                              f"({type(current).__name__}); set one of its keys, e.g. "
                              f"{key}.{fields.split(', ')[0]}=... (keys: {fields})")
        new = _typed(text, tp, key, current)
    else:
        factory = None
        if isinstance(node, PairSpec) and part == "model_cfg":
            factory = models.MODELS.get(node.model) if node.model in models.MODELS else None
        elif isinstance(node, PairSpec) and part == "guide_cfg":
            factory = guides.guide_builder(node.guide, node.model) \
                if node.guide in guides.GUIDES else None
        new = _set(current, rest, text, key, factory)
    try:
        return dataclasses.replace(node, **{part: new})
    except (ValueError, TypeError) as exc:  # the dataclass's own checks (FitConfig's ranges)
        raise ConfigError(f"--set {key}={text}: {exc}") from None


def _set_item(node: dict, part, rest, text, key, factory, open_: bool = False):
    """Set ``part`` (then ``rest``) in the dict ``node``: a model's or guide's keyword arguments
    (``factory`` given: keys and types from its signature), a free-form dict (keys must exist,
    types are those of the defaults), or a dict this override creates (``open_``: any key)."""
    node = dict(node)
    if factory is not None:
        allowed = signature_types(factory)
        if allowed is not None and part not in allowed:
            raise ConfigError(f"--set {key}: unknown key {part!r}; valid keys: "
                              f"{', '.join(sorted(k for k in allowed if k != 'model'))}")
        tp = Any if allowed is None else allowed.get(part, Any)
    elif part in node:
        tp = _type_of_default(node[part])
    elif open_:
        tp = Any
    else:
        raise ConfigError(f"--set {key}: unknown key {part!r}; keys there: "
                          f"{', '.join(sorted(node)) or '(none)'}")
    if not rest:
        node[part] = _typed(text, tp, key, node.get(part))
        return node
    sub = node.get(part)
    if sub is not None and not isinstance(sub, dict):
        raise ConfigError(f"--set {key}={text}: {part!r} holds {sub!r}, not a section")
    node[part] = _set_item(sub or {}, rest[0], rest[1:], text, key, None, open_=sub is None)
    return node


def _type_of_default(value):
    """The declared type of a free-form dict entry: that of its default value."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, (list, tuple)):
        inner = {_type_of_default(v) for v in value}
        return list[inner.pop()] if len(inner) == 1 else list
    if isinstance(value, dict):
        return dict
    return Any


def _typed(text: str, tp, key: str, current):
    value = parse_text(text, tp)
    try:
        return coerce(value, tp)
    except Mismatch:
        raise value_error(key, text, tp) from None


# ------------------------------------------------------------------------------------------------
# validation and serialisation


def validate_config(config, where: str = "") -> None:
    """Validate the whole config before anything runs: every :class:`PairSpec` against the
    registries and signatures, every field against its declared type, and the config's own
    ``validate()`` if it has one (experiment-specific checks)."""
    if not dataclasses.is_dataclass(config):
        return
    if isinstance(config, PairSpec):
        config.validate(where)
        return
    hints = type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        path = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            validate_config(value, path)
        elif isinstance(value, dict) and all(dataclasses.is_dataclass(v) for v in value.values()):
            for k, v in value.items():
                validate_config(v, f"{path}.{k}")
        elif f.name in hints:
            try:
                coerce(value, hints[f.name])
            except Mismatch:
                raise ConfigError(f"{path}: expected {type_name(hints[f.name])}, got "
                                  f"{value!r}") from None
    check = getattr(type(config), "validate", None)
    if check is not None:
        check(config)


def config_dict(config) -> Any:
    """The config as JSON-ready nested dicts (for config.json); the run's options are not in it
    (they are the RunContext's, recorded beside it)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {str(k): config_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_dict(v) for v in config]
    return config


__all__ = ["ConfigError", "PairSpec", "RUN_KEYS", "RunContext", "apply_overrides", "coerce",
           "config_dict", "train_pair", "validate_config"]
