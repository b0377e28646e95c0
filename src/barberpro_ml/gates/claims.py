"""Claims a model must support before promotion, as read from ``configs/claims.yaml``.

A claim is one checkable sentence: "the churn model's accuracy is at least 0.941" (the seed
document's number) or "its expected calibration error is at most 0.05" (a team floor). Claims are
data, not code: the file says where every number comes from (``source``), and the gates in
:mod:`barberpro_ml.gates.check` decide, with evidence, whether a candidate model supports them.

Validation
----------
:func:`load_claims` checks a file for shape (the pydantic records below: required fields,
types, no unknown key) **and for meaning**, against the catalogue of what each family's
evaluation report contains (:mod:`barberpro_ml.gates.catalog`), and reports every problem at
once (:class:`ClaimsError` ``.problems``), each naming the file, the line when known, the claim
(index and id) or setting, the field and what was expected. ``barberpro-ml claims check FILE``
prints them. The rules:

1. **No duplicate YAML keys**, anywhere in the file: YAML keeps the last value silently, so
   ``claimed`` written twice would gate on a number nobody sees. Keys brought in by a merge
   (``<<: *anchor``) may be overridden.
2. **No unknown keys** (a typo such as ``polcy`` would otherwise fall back to the default).
3. **Known family** (``churn``, ``ltv``, ``recs``, ``segments``), with a did-you-mean
   suggestion: a misspelled family's claims would never be checked by any job.
4. **Known metric for the family**: a name the family's evaluation report contains; a claim on
   a missing metric can only fail at gate time, after the training run.
5. **Direction agrees with the metric's sense**: lower-is-better metrics (ECE, Brier, log loss,
   MAE, RMSE and their differences) take ``at_most``; higher-is-better ones (AUC, accuracy,
   NDCG, Spearman, id stability and their differences) ``at_least``; signed metrics
   (``aggregate_error``) either. A reversed claim ("ECE at least 0.05") passes for a *worse*
   model.
6. **Claimed value inside the metric's range** (probabilities, ECE, Brier, NDCG in [0, 1];
   ROC AUC in [0.5, 1], since below chance says nothing; MAE, RMSE, log loss >= 0;
   correlations in [-1, 1]; a difference of a metric in [low - high, high - low]), and **not a
   claim that cannot fail** (``at_least`` the metric's minimum, ``at_most`` its maximum).
7. **Non-inferiority settings** name a known family whose job compares the challenger with
   the champion (not ``segments``), a metric that comparison can compute for the family
   (churn: a classification metric; ltv: ``mae``/``rmse``; recs: ``mean`` of per-customer
   NDCG@10), and a margin with ``0 < margin <= 10%`` of the metric's scale (the width of its
   informative range: ROC AUC 0.5, so at most 0.05). A margin of 0 demands a significant
   improvement at every retrain; a margin of a tenth of everything the metric can measure
   already lets a retrain lose a grade of model, and retrains compound. Metrics in the data's
   units (MAE in currency) have no scale known in advance: only positivity is checked there.
8. **Every family in the file has a blocking claim** (a family whose claims are all
   ``blocking: false`` would pass its gate whatever the model does), and the file has at least
   one claim.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from barberpro_ml.errors import InputError, InputNotFoundError
from barberpro_ml.gates.catalog import (
    CATALOGUE,
    MAX_MARGIN_SHARE,
    FamilyCatalog,
    allowed_directions,
)

Direction = Literal["at_least", "at_most"]
Policy = Literal["ci", "point", "consistent"]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ClaimProblem(BaseModel):
    """One problem of a claims file: where it is, which field, and what was expected.

    Attributes
    ----------
    file
        The claims file.
    where
        ``claim #3 (id 'churn-ece-ceiling')``, ``settings.non_inferiority.churn``, ``family
        'ltv'`` or ``top level``.
    field
        The field at fault (``direction``, ``margin``...), when there is one.
    message
        What is wrong and what to do.
    line
        1-based line in the file, when known.
    claim_index, claim_id
        The claim (1-based index in ``claims:``, and its id), for problems of one claim.
    """

    model_config = ConfigDict(frozen=True)

    file: str = ""
    where: str = ""
    field: str | None = None
    message: str
    line: int | None = None
    claim_index: int | None = None
    claim_id: str | None = None

    def describe(self) -> str:
        """The problem on one line: ``file:line: where: field 'f': message``."""
        place = f"{self.file}:{self.line}" if self.file and self.line else self.file
        parts = [p for p in (place, self.where) if p]
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join([*parts, self.message])


class ClaimsError(InputError):
    """A claims file that cannot be used; ``problems`` lists every problem found, at once.

    Each problem names the file, the claim (index and id) or setting, the field and what was
    expected, like :class:`~barberpro_ml.data.DataContractError` does for event data.
    """

    def __init__(self, problems: str | Sequence[ClaimProblem]) -> None:
        if isinstance(problems, str):
            problems = [ClaimProblem(message=problems)]
        self.problems: list[ClaimProblem] = list(problems)
        n = len(self.problems)
        files = sorted({p.file for p in self.problems if p.file})
        head = f"claims file {', '.join(files)} refused" if files else "claims refused"
        if n == 1:
            message = f"{head}: {self.problems[0].describe()}"
        else:
            message = "\n".join([f"{head}: {n} problems",
                                  *(f"  - {p.describe()}" for p in self.problems)])
        super().__init__(message)


#: Default ``SliceFloor.min_class_count``: the fewest positives *and* negatives a
#: classification slice needs before a ROC AUC floor is tested on it. Measured with
#: ``python benchmarks/gate_statistics.py --reps 400 --seed 1`` (binormal scores, true slice
#: AUC 0.90, floor 0.85, as many positives as negatives, 1,000 bootstrap replicates, 95%
#: confidence): such a floor passed in 63.7% [58.9%, 68.3%] of 400 slices with 100 of each
#: class, 78.8% [74.5%, 82.5%] with 150 and 85.0% [81.2%, 88.2%] with 200, the first count
#: whose whole Monte-Carlo interval clears 80%; a floor equal to the true AUC passed in 3.0%
#: [1.7%, 5.2%] at 200. More rows of either class only narrow the interval, so larger slices
#: do better. ``tests/test_gate_statistics.py`` re-measures power and false passes at this value.
DEFAULT_MIN_CLASS_COUNT = 200


class SliceFloor(BaseModel):
    """Apply a claim to every slice of one dimension that is large enough to be tested.

    A classification slice (one whose report records ``positives``) is testable when it has at
    least ``min_class_count`` positives **and** as many negatives: an AUC interval is as wide as
    the scarcer class makes it, so counting rows would let a slice with ten churners pass a floor
    it cannot test. Slices without a class count (regression, ranking) need ``min_class_count``
    rows. A slice below the minimum is a row of its own with the verdict ``untestable``
    (reported and tagged; it refuses promotion only when the claim says ``untestable: block``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimension: str = Field(min_length=1)
    min_class_count: int = Field(default=DEFAULT_MIN_CLASS_COUNT, ge=1)


class Claim(BaseModel):
    """One claim about one metric of one model family.

    Attributes
    ----------
    id
        Unique, stable identifier (letters, digits, ``_ . -``); used as the model-version tag key.
    family
        Model family the claim is about (``churn``, ``ltv``, ``recs`` ...).
    metric
        Metric name as it appears in :attr:`EvaluationReport.metrics` (``roc_auc``, ``ece``...).
    claimed
        The claimed value.
    direction
        ``at_least`` (the metric is claimed to be >= ``claimed``) or ``at_most``.
    source
        Where the number comes from: a quote from the seed document, or "team floor: why".
    policy
        ``ci`` (default): the confidence bound on the right side must clear the claim, with
        Holm's correction across claims. ``point``: the point estimate alone decides; weaker,
        and labelled so in every verdict. ``consistent``: the claimed value must lie inside
        the gate's confidence interval (the evidence does not contradict it in either
        direction; for a calibration such as the coverage of 89% prediction intervals, where
        too low and too high are both wrong). ``direction`` may be left out of a
        ``consistent`` claim (it is not used; ``at_least`` is stored).
    slice
        Optional per-slice floor; the claim is then checked on each slice of that dimension
        instead of on the whole evaluation set (slices too small to test are ``untestable``).
    untestable
        What an ``untestable`` slice row does: ``report`` (default) shows and tags it without
        refusing promotion; ``block`` refuses promotion until the slice can be tested.
    blocking
        Whether a failed verdict refuses promotion (default). A non-blocking claim is tested,
        logged and tagged exactly the same way, but only reported: used for claims under audit
        (the seed document's numbers) so that an unsupported marketing claim is refused in
        every report without freezing the registry.
    strict
        ``False`` (default): the claim is ``metric >= claimed`` (``<=`` for ``at_most``);
        ``True``: ``metric > claimed`` (``<``). The two differ only where the metric can sit
        exactly on the claimed value: a ``ci`` or ``point`` claim that is not strict is met by
        an estimate that is exactly ``claimed`` with every bootstrap replicate exactly
        ``claimed`` too (a point mass on the threshold, e.g. "keep prices" changes revenue by
        exactly 0 in every replicate), a strict one is not (see
        :func:`barberpro_ml.gates.check.bootstrap_p_value`). Not allowed with ``consistent``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN)
    family: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    claimed: float = Field(allow_inf_nan=False)
    direction: Direction
    source: str = Field(min_length=1)
    policy: Policy = "ci"
    slice: SliceFloor | None = None
    blocking: bool = True
    untestable: Literal["report", "block"] = "report"
    strict: bool = False

    @model_validator(mode="after")
    def _strict_needs_a_side(self) -> Claim:
        if self.strict and self.policy == "consistent":
            raise ValueError("strict: a consistent claim has no side to be strict about "
                             "(it passes when the claimed value lies inside the interval); "
                             "drop strict or use policy ci")
        return self

    @model_validator(mode="before")
    @classmethod
    def _direction_of_consistent(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("policy") == "consistent" \
                and "direction" not in values:
            return {**values, "direction": "at_least"}
        return values

    def describe(self) -> str:
        """The claim as a short sentence, e.g. ``accuracy >= 0.941``."""
        op = (">" if self.direction == "at_least" else "<") if self.strict \
            else (">=" if self.direction == "at_least" else "<=")
        if self.policy == "consistent":
            op = "consistent with"
        where = (f" on every {self.slice.dimension} slice with >= "
                 f"{self.slice.min_class_count} of each class") if self.slice else ""
        return f"{self.metric} {op} {self.claimed:g}{where}"


class NonInferiority(BaseModel):
    """How a challenger is compared with the current champion for one model family.

    The challenger passes when the paired-bootstrap bound of (challenger - champion) clears
    ``-effective margin``, where the effective margin is ``max(margin, detectable difference)``
    and the detectable difference is ``(z_{1-a} + z_power) x SE`` of the paired difference: the
    loss the test set can tell apart from zero with probability ``power`` (see
    :mod:`barberpro_ml.gates.check`). An effective margin above ``max_margin`` means the test
    set is too small to tell, and the comparison fails with that reason.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1)
    margin: float = Field(ge=0.0, allow_inf_nan=False)
    power: float = Field(default=0.8, ge=0.5, lt=1.0)
    max_margin: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    source: str = ""


class GateSettings(BaseModel):
    """File-wide settings of the gates.

    Attributes
    ----------
    alpha
        Family-wise error rate of the published verdicts (Holm).
    confidence
        Level of every interval the gate decides on, computed by the gate from the bootstrap
        replicates (a report's own ``ci_low``/``ci_high`` are shown, never used).
    min_bootstrap
        Fewest finite bootstrap replicates a ``ci`` claim or the champion comparison accepts;
        at least 1,000 (the tail quantiles of fewer replicates are too noisy: 20 replicates gave
        7.7% false passes at a nominal 5%).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    confidence: float = Field(default=0.95, ge=0.8, le=0.999)
    min_bootstrap: int = Field(default=1000, ge=1000)
    non_inferiority: dict[str, NonInferiority] = Field(default_factory=dict)
    #: Largest share of test rows that may repeat training rows beyond the rate expected by
    #: chance (``OverlapReport.excess``); see :mod:`barberpro_ml.evaluation.overlap`.
    max_test_overlap: float = Field(default=0.01, ge=0.0, lt=1.0)


class ClaimSet(BaseModel):
    """The claims of a file (optionally of one family) with the file's settings.

    Iterating yields the claims; ``len`` counts them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    settings: GateSettings = Field(default_factory=GateSettings)
    claims: list[Claim]
    path: str | None = None

    @field_validator("claims")
    @classmethod
    def _unique_ids(cls, claims: list[Claim]) -> list[Claim]:
        ids = [c.id for c in claims]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"claim ids must be unique; repeated: {dupes}")
        return claims

    def __iter__(self) -> Iterator[Claim]:  # type: ignore[override]
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def for_family(self, family: str) -> ClaimSet:
        """The claims of one family (settings kept)."""
        return self.model_copy(update={"claims": [c for c in self.claims if c.family == family]})

    @property
    def families(self) -> list[str]:
        """The families that have at least one claim, sorted."""
        return sorted({c.family for c in self.claims})


def load_claims(path: str | Path, family: str | None = None) -> ClaimSet:
    """Read a claims file and validate it for shape and for meaning.

    Every problem of the file is collected and reported at once (see the module docstring for
    the rules): duplicate YAML keys, unknown keys, missing or invalid fields, unknown families
    and metrics, directions against a metric's sense, values outside its range,
    non-inferiority settings the champion comparison cannot use or with a margin that is not
    positive or too large, and families without a blocking claim.

    Parameters
    ----------
    path
        YAML file with a ``claims:`` list and optional ``settings:`` (see
        ``configs/claims.yaml``).
    family
        Keep only the claims of this family. A family with no claim in the file is an error
        (a gate with nothing to check would pass vacuously).

    Returns
    -------
    ClaimSet
        The claims and the file's settings (``alpha``, non-inferiority metric and margin).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ClaimsError
        Anything wrong with the file; ``problems`` lists every problem, each naming the file,
        the claim (index and id) or setting, the field and what was expected.

    Examples
    --------
    >>> claims = load_claims("configs/claims.yaml", family="churn")   # doctest: +SKIP
    >>> [c.id for c in claims]                                         # doctest: +SKIP
    ['churn-accuracy-seed', 'churn-roc-auc-floor', ...]
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"claims file not found: {path}")
    claim_set, problems = _read(path)
    if problems or claim_set is None:
        raise ClaimsError(problems)
    if family is None:
        return claim_set
    selected = claim_set.for_family(family)
    if not selected.claims:
        hint = _did_you_mean(family, claim_set.families)
        raise ClaimsError([ClaimProblem(
            file=str(path), where=f"family {family!r}",
            message=f"no claims for family {family!r}{hint}; families in the file: "
                    f"{claim_set.families}")])
    return selected


# --------------------------------------------------------------------------- reading (shape)
class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that records every duplicate mapping key instead of keeping the last.

    Duplicates are collected (key, line, line of the first occurrence) rather than raised, so
    that they are reported together with every other problem of the file. Keys brought in by a
    merge (``<<: *anchor``) may be overridden, as YAML intends; only keys written twice in the
    same mapping are refused.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []

    def construct_mapping(self, node: yaml.MappingNode,
                          deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or \
                    key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue
            if key in seen:
                self.duplicates.append((str(key), line, seen[key]))
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> tuple[Any, yaml.Node | None, list[tuple[str, int, int]]]:
    """The document, its node tree (for line numbers) and the duplicate keys."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        return data, node, loader.duplicates
    finally:
        loader.dispose()


def _node_line(root: yaml.Node | None, *keys: str | int) -> int | None:
    """Line of the value at ``keys`` (``"settings", "non_inferiority", "churn"``, or
    ``"claims", 2, "direction"``); None when there is no such value."""
    node = root
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value
                         if isinstance(k, yaml.ScalarNode) and k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and \
                0 <= key < len(node.value):
            node = node.value[key]
        else:
            return None
    return None if node is None else node.start_mark.line + 1


def _locate(root: yaml.Node | None, problem: ClaimProblem) -> ClaimProblem:
    """The problem with the line of its field, when the file has one."""
    keys: list[str | int] = []
    if problem.claim_index is not None:
        keys = ["claims", problem.claim_index - 1]
    elif problem.where.startswith("settings"):
        keys = [*problem.where.split(".")]
    else:
        return problem
    field_keys = problem.field.split(".") if problem.field else []
    line = _node_line(root, *keys, *field_keys) or _node_line(root, *keys)
    return problem.model_copy(update={"line": line}) if line else problem


def _claim_lines(root: yaml.Node | None) -> list[int]:
    """Line of each item of the top-level ``claims:`` list."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "claims" and \
                isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


@dataclass(frozen=True)
class _ClaimView:
    """The fields of one claim that are valid on their own (None: missing or invalid), so that
    the meaning checks can run on a claim whose other fields failed validation."""

    index: int
    id: str | None
    line: int | None
    family: str | None
    metric: str | None
    claimed: float | None
    direction: str | None
    blocking: bool | None

    @property
    def where(self) -> str:
        return f"claim #{self.index + 1}" + (f" (id {self.id!r})" if self.id else "")

    def problem(self, file: str, field: str | None, message: str) -> ClaimProblem:
        return ClaimProblem(file=file, where=self.where, field=field, message=message,
                            line=self.line, claim_index=self.index + 1, claim_id=self.id)


def _view(index: int, item: dict[Any, Any], claim: Claim | None, bad: set[str],
          line: int | None) -> _ClaimView:
    if claim is not None:
        return _ClaimView(index, claim.id, line, claim.family, claim.metric, claim.claimed,
                          claim.direction, claim.blocking)

    def text(name: str) -> str | None:
        value = item.get(name)
        return value if isinstance(value, str) and value and name not in bad else None

    claimed = item.get("claimed")
    number = float(claimed) if isinstance(claimed, int | float) and \
        not isinstance(claimed, bool) and "claimed" not in bad else None
    blocking = item.get("blocking", True)
    return _ClaimView(index, item["id"] if isinstance(item.get("id"), str) else None, line,
                      text("family"), text("metric"), number, text("direction"),
                      blocking if isinstance(blocking, bool) else None)


def _read(path: Path) -> tuple[ClaimSet | None, list[ClaimProblem]]:
    """Parse and validate the file; the claim set when there is no problem, and the problems."""
    file = str(path)

    def top(message: str, field: str | None = None, line: int | None = None) -> ClaimProblem:
        return ClaimProblem(file=file, where="top level", field=field, message=message,
                            line=line)

    try:
        raw, root, duplicates = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return None, [top(f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except yaml.YAMLError as exc:
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            what = " ".join(p for p in (exc.context, exc.problem) if p)
            return None, [top(f"not valid YAML: {what}", line=exc.problem_mark.line + 1)]
        return None, [top(f"not valid YAML: {' '.join(str(exc).split())}")]
    lines = _claim_lines(root)
    items = raw.get("claims") if isinstance(raw, dict) else None
    duplicate_keys = []
    for key, line, first in duplicates:
        # name the claim the key belongs to: the last claim starting at or before its line
        index = bisect.bisect_right(lines, line) - 1
        item = items[index] if index >= 0 and isinstance(items, list) and \
            index < len(items) else None
        claim_id = item.get("id") if isinstance(item, dict) else None
        where = "top level" if index < 0 else f"claim #{index + 1}" + (
            f" (id {claim_id!r})" if isinstance(claim_id, str) else "")
        duplicate_keys.append(ClaimProblem(
            file=file, where=where, field=key, line=line,
            claim_index=index + 1 if index >= 0 else None,
            claim_id=claim_id if isinstance(claim_id, str) else None,
            message=f"duplicate key: {key!r} appears twice in the same mapping (first on "
                    f"line {first}); YAML would silently keep the last value: write it once"))
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        return None, [*duplicate_keys,
                      top("expected a mapping with a 'claims:' list at the top level")]
    problems: list[ClaimProblem] = []
    unknown = sorted(str(k) for k in set(raw) - {"settings", "claims"})
    if unknown:
        problems.append(top(f"unknown top-level key(s) {unknown}; expected 'settings' and "
                            "'claims'"))

    settings: GateSettings | None = None
    try:
        settings = GateSettings.model_validate(raw.get("settings") or {})
    except ValidationError as exc:
        problems += [ClaimProblem(file=file, where="settings", field=field, message=message)
                     for field, message in _errors(exc)]

    claims: list[Claim] = []
    views: list[_ClaimView] = []
    for i, item in enumerate(raw["claims"]):
        claim_line = lines[i] if i < len(lines) else None
        if not isinstance(item, dict):
            problems.append(ClaimProblem(file=file, where=f"claim #{i + 1}", line=claim_line,
                                         claim_index=i + 1,
                                         message=f"expected a mapping of fields, got {item!r}"))
            continue
        claim: Claim | None = None
        errors: list[tuple[str, str]] = []
        try:
            claim = Claim.model_validate(item)
            claims.append(claim)
        except ValidationError as exc:
            errors = _errors(exc)
        view = _view(i, item, claim, {field.split(".")[0] for field, _ in errors}, claim_line)
        views.append(view)
        problems += [view.problem(file, field, message) for field, message in errors]

    ids = [v.id for v in views if v.id]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        problems.append(top(f"claim ids must be unique; repeated: {repeated}", field="id"))

    problems += _meaning_problems(file, views, raw.get("settings"))
    if problems or duplicate_keys:
        # duplicate keys carry their own line; every other problem gets its field's
        return None, [*duplicate_keys, *(_locate(root, p) for p in problems)]
    assert settings is not None  # a settings error is a problem above
    return ClaimSet(settings=settings, claims=claims, path=file), []


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) of every pydantic error, the message naming the value received."""
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key: not a field of this record (a typo?)"
        out.append((field, f"{message}{value}"))
    return out


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- meaning
# The meaning checks of a claims file. Kept apart from the pydantic records above (which check
# the shape) so that fields added to those records do not touch these rules; see the module
# docstring for the rules and why each exists.
def _meaning_problems(file: str, claims: Sequence[_ClaimView], raw_settings: Any
                      ) -> list[ClaimProblem]:
    """Every problem of meaning in a file's claims and non-inferiority settings.

    Parameters
    ----------
    file
        The file, for the messages.
    claims
        Each claim's fields that are valid on their own (a claim that failed its shape check
        is still checked for what can be).
    raw_settings
        The file's ``settings:`` as read; each non-inferiority entry that is valid on its own
        is checked (invalid ones were reported by the shape check).
    """
    problems: list[ClaimProblem] = []
    known = sorted(CATALOGUE)
    if not claims:
        problems.append(ClaimProblem(
            file=file, where="top level", field="claims",
            message="no claims: every gate would pass with nothing to check; add at least one "
                    "blocking claim per model family"))
    for view in claims:
        problems += _claim_problems(file, view, known)

    non_inferiority = raw_settings.get("non_inferiority") if isinstance(raw_settings, dict) \
        else None
    ni_families: list[str] = []
    if isinstance(non_inferiority, dict):
        for family, item in non_inferiority.items():
            try:
                setting = NonInferiority.model_validate(item)
            except ValidationError:
                continue  # reported by the shape check
            ni_families.append(str(family))
            problems += _non_inferiority_problems(file, str(family), setting, known)

    # A family named in the file must have at least one blocking claim, else its gate passes
    # whatever the model does (only unknown-or-invalid "blocking" fields leave it undecided).
    families = {v.family for v in claims if v.family is not None and v.family in CATALOGUE}
    families |= {f for f in ni_families if f in CATALOGUE}
    for family in sorted(families):
        of_family = [v for v in claims if v.family == family]
        if any(v.blocking is None for v in of_family):
            continue
        if not any(v.blocking for v in of_family):
            what = (f"its {len(of_family)} claim(s) are all blocking: false" if of_family
                    else "it has non-inferiority settings but no claim")
            problems.append(ClaimProblem(
                file=file, where=f"family {family!r}", field="blocking",
                message=f"no blocking claim for family {family!r} ({what}), so its gate would "
                        "pass vacuously; make at least one claim blocking (a team floor set "
                        "from measurement)"))
    return problems


def _claim_problems(file: str, view: _ClaimView, known: list[str]) -> list[ClaimProblem]:
    if view.family is None:
        return []
    catalog = CATALOGUE.get(view.family)
    if catalog is None:
        return [view.problem(file, "family", (
            f"unknown model family {view.family!r}{_did_you_mean(view.family, known)}; "
            f"expected one of {known}"))]
    if view.metric is None:
        return []
    spec = catalog.spec(view.metric)
    if spec is None:
        return [view.problem(file, "metric", _unknown_metric(catalog, view.metric))]
    problems = []
    allowed = allowed_directions(spec.sense)
    if view.direction is not None and view.direction not in allowed:
        sense = "lower is better" if spec.sense == "lower" else "higher is better"
        problems.append(view.problem(file, "direction", (
            f"{view.direction!r} contradicts {spec.name!r} ({sense}): the claim would pass "
            f"for a worse model; expected {allowed[0]!r}")))
    if view.claimed is not None:
        lo, hi = spec.claim_range
        if not lo <= view.claimed <= hi:
            why = " (0.5 is chance: a claim below it says nothing)" \
                if spec.claim_low is not None and view.claimed < lo else ""
            problems.append(view.problem(file, "claimed", (
                f"{view.claimed:g} is outside the range of {spec.name!r} claims "
                f"{spec.describe_range()}{why}")))
        elif (view.direction == "at_least" and view.claimed <= spec.low) or \
                (view.direction == "at_most" and view.claimed >= spec.high):
            bound = "below" if view.direction == "at_least" else "above"
            problems.append(view.problem(file, "claimed", (
                f"{spec.name} {'>=' if view.direction == 'at_least' else '<='} "
                f"{view.claimed:g} cannot fail ({spec.name} is never {bound} {view.claimed:g}): "
                "claim a value the metric can miss")))
    return problems


def _unknown_metric(catalog: FamilyCatalog, metric: str) -> str:
    listed = catalog.metric_names(None)
    cutoffs = " (k: any cut-off of the job, e.g. 10)" if any("@k" in n for n in listed) else ""
    return (f"family {catalog.family!r} reports no metric {metric!r}"
            f"{_did_you_mean(metric, catalog.metric_names())}; expected one of {listed}"
            f"{cutoffs}")


# The margin rule: 0 < margin <= MAX_MARGIN_SHARE (10%) x the metric's scale, the width of its
# informative range (ROC AUC: 0.5, from chance to perfect, so at most 0.05). A margin is the
# loss a retrain may show and still count as "not worse"; at 10% of everything the metric can
# measure it already equals the gap the team treats as a different grade of model (the shipped
# by-channel AUC floor is 0.05 under the overall one), and retrains compound it. A margin of
# 0 (or less) would demand a significant improvement at every retrain instead. Metrics in the
# data's units (MAE, RMSE in currency) have no scale known in advance: only positivity is
# checked, and the setting's source must say where its number comes from.
def _non_inferiority_problems(file: str, family: str, setting: NonInferiority,
                              known: list[str]) -> list[ClaimProblem]:
    where = f"settings.non_inferiority.{family}"
    catalog = CATALOGUE.get(family)
    if catalog is None:
        return [ClaimProblem(file=file, where=where, message=(
            f"unknown model family {family!r}{_did_you_mean(family, known)}; expected one "
            f"of {known}"))]
    if not catalog.paired:
        return [ClaimProblem(file=file, where=where, message=(
            f"family {family!r} has no champion comparison (its job checks claims only); "
            "remove this entry"))]
    spec = catalog.paired_spec(setting.metric)
    if spec is None:
        choices = [m.name for m in catalog.paired]
        return [ClaimProblem(file=file, where=where, field="metric", message=(
            f"the champion comparison of family {family!r} cannot use {setting.metric!r}"
            f"{_did_you_mean(setting.metric, choices)}; expected one of {choices}"))]
    margin = setting.margin
    if not margin > 0:
        return [ClaimProblem(file=file, where=where, field="margin", message=(
            f"margin {margin:g} is not positive: the challenger would have to be "
            "significantly better than the champion at every retrain; expected a small "
            "positive loss that counts as indistinguishable"))]
    if spec.scale is not None and margin > MAX_MARGIN_SHARE * spec.scale * (1 + 1e-9):
        limit = MAX_MARGIN_SHARE * spec.scale
        return [ClaimProblem(file=file, where=where, field="margin", message=(
            f"margin {margin:g} on {spec.name!r} is large against the metric's scale "
            f"{spec.scale:g}: expected 0 < margin <= {limit:g} "
            f"({MAX_MARGIN_SHARE:.0%} of the scale), or the challenger may lose that much "
            "and still count as not worse"))]
    return []
