"""Claims a model must support before promotion, as read from ``configs/claims.yaml``.

A claim is one checkable sentence: "the churn model's accuracy is at least 0.941" (the seed
document's number) or "its expected calibration error is at most 0.05" (a team floor). Claims are
data, not code: the file says where every number comes from (``source``), and the gates in
:mod:`barberpro_ml.gates.check` decide, with evidence, whether a candidate model supports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Direction = Literal["at_least", "at_most"]
Policy = Literal["ci", "point"]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ClaimsError(ValueError):
    """A claims file that cannot be read: names the file, the claim and the field."""


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
        and labelled so in every verdict.
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

    def describe(self) -> str:
        """The claim as a short sentence, e.g. ``accuracy >= 0.941``."""
        op = ">=" if self.direction == "at_least" else "<="
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
    """Read and validate a claims file.

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
        Invalid YAML, or a claim with a missing/invalid field; the message names the file, the
        claim (index and id) and the field.

    Examples
    --------
    >>> claims = load_claims("configs/claims.yaml", family="churn")   # doctest: +SKIP
    >>> [c.id for c in claims]                                         # doctest: +SKIP
    ['churn-accuracy-seed', 'churn-roc-auc-floor', ...]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"claims file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ClaimsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        raise ClaimsError(f"{path}: expected a mapping with a 'claims:' list at the top level")

    claims = [_parse_claim(path, i, item) for i, item in enumerate(raw["claims"])]
    try:
        claim_set = ClaimSet(settings=GateSettings.model_validate(raw.get("settings") or {}),
                             claims=claims, path=str(path))
    except ValidationError as exc:
        raise ClaimsError(f"{path}: {_describe_errors(exc, prefix='')}") from None
    unknown = sorted(set(raw) - {"settings", "claims"})
    if unknown:
        raise ClaimsError(f"{path}: unknown top-level key(s) {unknown}; "
                          "expected 'settings' and 'claims'")
    if family is None:
        return claim_set
    selected = claim_set.for_family(family)
    if not selected.claims:
        raise ClaimsError(f"{path}: no claims for family {family!r}; "
                          f"families in the file: {claim_set.families}")
    return selected


def _parse_claim(path: Path, index: int, item: Any) -> Claim:
    label = f"claim #{index + 1}"
    if isinstance(item, dict) and "id" in item:
        label += f" (id {item['id']!r})"
    if not isinstance(item, dict):
        raise ClaimsError(f"{path}: {label}: expected a mapping of fields, got {item!r}")
    try:
        return Claim.model_validate(item)
    except ValidationError as exc:
        raise ClaimsError(f"{path}: {label}: {_describe_errors(exc, prefix='')}") from None


def _describe_errors(exc: ValidationError, *, prefix: str) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        parts.append(f"field {prefix}{field!r}: {err['msg']}{value}")
    return "; ".join(parts)
