"""Gate results bound to the model version they judged, and the checks run on them.

A :class:`~barberpro_ml.gates.GateResult` says "these claims passed on this report". On its own
it can be copied to another version, computed against a champion that has since moved, built
by hand, or edited after the fact. :func:`record_gate` binds it to what it judged -- the
registered model name and version, the version's own source run, the family, the digest of the
claims file's content and the claim ids checked, the champion version it was compared with (or
none), the digests of the evaluation report, the test set and the training features, and the
library version -- and records the bound result in the version's source run under a path named
by its own content digest, which is also set as the version tag ``gate.digest``.

:func:`binding_problems` re-reads that record and checks every binding; it is what
:func:`barberpro_ml.registry.promote` runs before it moves ``@champion``, and (without the
claims-file and champion-moved checks, which legitimately change after a promotion)
what :func:`verify_champion` runs for a consuming service. Besides the bindings, the claim
verdicts are **re-derived** from the logged evaluation report and the claims file
(:func:`barberpro_ml.gates.check` is deterministic given both), so a hand-built result whose
verdicts the evidence does not support is refused; the champion verdict's recorded numbers are
re-checked against its own decision rule.

What this does not stop: someone with write access to the tracking store who forges a report,
its digest tag and a matching gate result together. MLflow has no signed artifacts; the
promotion log (an append-only record of every attempt) is where such an edit would show.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import barberpro_ml
from barberpro_ml.errors import BindingError, VersionNotFoundError
from barberpro_ml.evaluation import ClassificationReport
from barberpro_ml.evaluation.report import EvaluationReport
from barberpro_ml.gates import ClaimsError, ClaimSet, GateResult, check, load_claims
from barberpro_ml.registry.promotion import promotion_log, verdict_tags
from barberpro_ml.registry.tracking import frame_digest

TAG_PREFIX = "gate."
TAG_DIGEST = "gate.digest"
TAG_ARTIFACT = "gate.artifact"
TAG_CHAMPION_VERSION = "gate.champion_version"
TAG_FAMILY = "barberpro.family"
REPORT_ARTIFACT = "evaluation/report.json"
GATE_INPUTS_DIR = "gate_inputs"
TARGET_COLUMN = "__target__"
NO_CHAMPION = "none"


class GateBindingError(BindingError):
    """A gate result that cannot be recorded because what it claims to judge is not what is
    in the registry (wrong family, a champion that moved during the evaluation ...)."""


class GateBinding(BaseModel):
    """What a gate result judged; every field is checked again before promotion.

    Attributes
    ----------
    model_name, model_version
        The registered model version the gate judged.
    source_run_id
        The run that produced that version (``ModelVersion.run_id``), which holds the report.
    family
        Model family of the claims (``churn``, ``ltv``, ...).
    claims_path, claims_digest
        The claims file and the SHA-256 of its content when the gate ran.
    claim_ids
        The ids of the family's claims that were checked (all of them).
    champion_version
        The champion the challenger was compared with, ``None`` when there was none.
    report_digest
        SHA-256 of the evaluation report (``evaluation/report.json`` in the source run).
    test_digest, feature_digest
        Content digests of the held-out test rows and of the training features.
    library_version
        ``barberpro_ml.__version__`` of the process that ran the gate.
    bound_at
        When the binding was made (UTC).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str
    model_version: str
    source_run_id: str
    family: str
    claims_path: str
    claims_digest: str
    claim_ids: tuple[str, ...]
    champion_version: str | None
    report_digest: str
    test_digest: str | None = None
    feature_digest: str | None = None
    library_version: str
    bound_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class BoundGateResult(BaseModel):
    """A gate result with its binding; ``content_digest()`` names its artifact and tag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    binding: GateBinding
    result: GateResult

    def content_digest(self) -> str:
        """SHA-256 of the canonical JSON of the binding and the result."""
        return hashlib.sha256(_canonical_json(self).encode()).hexdigest()

    @property
    def passed(self) -> bool:
        """Whether the bound gate result passed."""
        return self.result.passed


def _canonical_json(bound: BoundGateResult) -> str:
    return json.dumps(bound.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def text_digest(text: str | bytes) -> str:
    """SHA-256 hex digest of a text (or bytes) as stored."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def claims_file_digest(path: str | Path) -> str:
    """SHA-256 of a claims file's bytes (the file as written, comments included)."""
    return text_digest(Path(path).read_bytes())


def artifact_dir(digest: str) -> str:
    """Where a bound gate result with this content digest lives in its source run."""
    return f"gates/{digest[:16]}"


def _client(client: MlflowClient | None) -> MlflowClient:
    return client or MlflowClient()


def get_version(name: str, version: str | int, client: MlflowClient | None = None) -> Any:
    """The registry record of ``name`` v``version``, or :class:`VersionNotFoundError`."""
    client = _client(client)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            known = _known_versions(client, name)
            where = (f"known versions: {', '.join(known)}" if known else
                     f"no registered model named {name!r}")
            raise VersionNotFoundError(f"{name} v{version} does not exist ({where})") from None
        raise


def _known_versions(client: MlflowClient, name: str) -> list[str]:
    try:
        found = client.search_model_versions(f"name = '{name.replace(chr(39), '')}'")
    except MlflowException:
        return []
    return sorted((str(v.version) for v in found), key=int)


def current_champion(name: str, client: MlflowClient | None = None) -> str | None:
    """The version ``@champion`` points to, or None."""
    client = _client(client)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = model.aliases.get("champion")
    return None if version is None else str(version)


# --------------------------------------------------------------------------- recording
def log_gate_inputs(test: pd.DataFrame, target: Any | None = None, *, run_id: str,
                    name: str = "test", client: MlflowClient | None = None) -> str:
    """Log the held-out rows a gate compares models on; returns their content digest.

    ``barberpro-ml gate`` re-scores these rows with the candidate and the current champion when
    the champion moved since the job ran. The target (if any) is stored as ``__target__``.
    """
    frame = test.copy()
    if target is not None:
        frame[TARGET_COLUMN] = pd.Series(target, index=frame.index) \
            if not isinstance(target, pd.Series) else target.to_numpy()
    digest = frame_digest(frame)
    client = _client(client)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        frame.to_parquet(path)
        client.log_artifact(run_id, str(path), GATE_INPUTS_DIR)
    client.set_tag(run_id, f"barberpro.{name}_digest", digest)
    return digest


def record_gate(
    name: str, version: str | int, result: GateResult, claims: ClaimSet, *,
    champion_version: str | None, test_digest: str | None = None,
    feature_digest: str | None = None, client: MlflowClient | None = None,
) -> BoundGateResult:
    """Bind a gate result to model version ``name`` v``version`` and record it.

    Parameters
    ----------
    name, version
        The registered version the gate judged.
    result
        From :func:`barberpro_ml.gates.check`.
    claims
        The claim set it was checked against, read with :func:`~barberpro_ml.gates.load_claims`
        (its ``path`` is hashed; every claim of ``result.family`` must have been checked).
    champion_version
        The champion the evidence was compared with, ``None`` when there was none. Must still
        be the champion now: a gate computed against a champion that moved is refused.
    test_digest, feature_digest
        Digests of the test rows and training features (default: the source run's
        ``barberpro.test_digest`` / ``barberpro.feature_digest`` tags).

    Returns
    -------
    BoundGateResult
        Also logged to the version's source run as ``gates/<digest16>/gate_result.json`` (with a
        text and CSV rendering) and tagged on the version (``gate.digest``, ``gate.<check>``,
        ``gate.passed``, ``gate.champion_version``).

    Raises
    ------
    VersionNotFoundError
        No such version.
    GateBindingError
        The result does not fit the version (another family's claims, claims missing from the
        result, a champion that moved, a report that is not the source run's).
    """
    client = _client(client)
    mv = get_version(name, version, client)
    version = str(mv.version)
    if claims.path is None:
        raise GateBindingError("record_gate: the claim set has no file path; read it with "
                               "load_claims(path) so its content can be bound")
    family_ids = tuple(c.id for c in claims if c.family == result.family)
    checked = {c.claim_id for c in result.claims}
    missing = sorted(set(family_ids) - checked)
    problems = []
    if not family_ids:
        problems.append(f"the claims file {claims.path} has no claims for family "
                        f"{result.family!r}")
    if missing:
        problems.append(f"the result did not check claims {missing} of {claims.path}")
    family_tag = mv.tags.get(TAG_FAMILY)
    if family_tag and family_tag != result.family:
        problems.append(f"{name} v{version} is a {family_tag!r} model, the result judges "
                        f"{result.family!r}")
    compared = result.champion.champion_version
    if compared is not None and compared != champion_version:
        problems.append(f"the result compared with champion v{compared}, the binding says "
                        f"{champion_version or NO_CHAMPION}")
    now = current_champion(name, client)
    if now != champion_version:
        problems.append(f"the champion moved while the gate ran (compared with "
                        f"{_v(champion_version)}, now {_v(now)}); run the gate again")
    report_text = _read_text(client, mv.run_id, REPORT_ARTIFACT)
    if report_text is None:
        problems.append(f"the source run {mv.run_id} of {name} v{version} has no "
                        f"{REPORT_ARTIFACT}; log the report in the run that logs the model")
    if problems:
        raise GateBindingError(f"cannot bind the gate result to {name} v{version}: "
                               + "; ".join(problems))
    assert report_text is not None
    run_tags = client.get_run(mv.run_id).data.tags
    binding = GateBinding(
        model_name=name, model_version=version, source_run_id=mv.run_id,
        family=result.family, claims_path=str(claims.path),
        claims_digest=claims_file_digest(claims.path), claim_ids=family_ids,
        champion_version=champion_version, report_digest=text_digest(report_text),
        test_digest=test_digest or run_tags.get("barberpro.test_digest"),
        feature_digest=feature_digest or run_tags.get("barberpro.feature_digest"),
        library_version=barberpro_ml.__version__,
    )
    bound = BoundGateResult(binding=binding, result=result)
    digest = bound.content_digest()
    where = artifact_dir(digest)
    client.log_text(mv.run_id, _canonical_json(bound), f"{where}/gate_result.json")
    client.log_text(mv.run_id, result.to_text(), f"{where}/gate_result.txt")
    client.log_text(mv.run_id, result.table().to_csv(index=False), f"{where}/verdicts.csv")

    tags = verdict_tags(result) | {
        TAG_DIGEST: digest, TAG_ARTIFACT: f"{where}/gate_result.json",
        TAG_CHAMPION_VERSION: champion_version or NO_CHAMPION,
        TAG_PREFIX + "checked_at": result.checked_at.isoformat(),
        TAG_PREFIX + "run_id": mv.run_id,
    }
    stale = [k for k in mv.tags if k.startswith(TAG_PREFIX) and k not in tags]
    for key in stale:
        client.delete_model_version_tag(name, version, key)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if not family_tag:
        client.set_model_version_tag(name, version, TAG_FAMILY, result.family)
    return bound


def _v(version: str | None) -> str:
    return f"v{version}" if version else "no champion"


def _read_text(client: MlflowClient, run_id: str, artifact: str) -> str | None:
    try:
        return str(mlflow.artifacts.load_text(
            f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact}"))
    except Exception:  # MLflow raises several types for a missing artifact
        return None


# --------------------------------------------------------------------------- verifying
class BindingCheck(BaseModel):
    """The outcome of re-reading a version's bound gate result."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    model_version: str
    bound: BoundGateResult | None
    digest: str | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        """True when every binding held (the gate itself may still have failed)."""
        return not self.problems


def read_bound_gate(name: str, version: str | int, client: MlflowClient | None = None
                    ) -> tuple[Any, BoundGateResult | None, str | None, list[str]]:
    """The version record, its bound gate result, the tagged digest, and what is wrong."""
    client = _client(client)
    mv = get_version(name, version, client)
    digest = mv.tags.get(TAG_DIGEST)
    if not digest:
        return mv, None, None, [
            f"{name} v{mv.version} has no bound gate result (no {TAG_DIGEST} tag): run "
            f"`barberpro-ml gate --model {name} --version {mv.version}`"]
    text = _read_text(client, mv.run_id, f"{artifact_dir(digest)}/gate_result.json")
    if text is None:
        return mv, None, digest, [
            f"the gate result {artifact_dir(digest)}/gate_result.json named by {TAG_DIGEST} is "
            f"missing from the source run {mv.run_id}"]
    try:
        bound = BoundGateResult.model_validate_json(text)
    except ValidationError as exc:
        return mv, None, digest, [f"the recorded gate result is not a bound gate result "
                                  f"({exc.error_count()} problems, e.g. "
                                  f"{exc.errors()[0]['msg']})"]
    problems: list[str] = []
    if bound.content_digest() != digest:
        problems.append("the gate result artifact was modified after the gate ran (its "
                        f"content digest {bound.content_digest()[:16]} differs from the "
                        f"{TAG_DIGEST} tag {digest[:16]} set at gate time)")
    b = bound.binding
    if b.model_name != name or b.model_version != str(mv.version):
        problems.append(f"the gate result judged {b.model_name} v{b.model_version}, not "
                        f"{name} v{mv.version}")
    if b.source_run_id != mv.run_id:
        problems.append(f"the gate result is bound to run {b.source_run_id}, but {name} "
                        f"v{mv.version} was produced by run {mv.run_id}")
    if bound.result.family != b.family:
        problems.append(f"the result judges family {bound.result.family!r}, the binding says "
                        f"{b.family!r}")
    family_tag = mv.tags.get(TAG_FAMILY)
    if family_tag and family_tag != b.family:
        problems.append(f"{name} v{mv.version} is a {family_tag!r} model, the gate judged "
                        f"{b.family!r} claims")
    report_text = _read_text(client, mv.run_id, REPORT_ARTIFACT)
    if report_text is None:
        problems.append(f"the evaluation report {REPORT_ARTIFACT} is missing from run "
                        f"{mv.run_id}")
    elif text_digest(report_text) != b.report_digest:
        problems.append(f"the evaluation report {REPORT_ARTIFACT} of run {mv.run_id} changed "
                        "after the gate ran (digest differs)")
    return mv, bound, digest, problems


def binding_problems(
    name: str, version: str | int, *, claims_path: str | Path | None = None,
    check_claims: bool = True, check_champion: bool = True,
    client: MlflowClient | None = None,
) -> BindingCheck:
    """Every reason the recorded gate result of ``name`` v``version`` cannot be trusted.

    Parameters
    ----------
    claims_path
        The claims file promotion is judged by (default: the one the gate recorded); its
        content must be the one the gate ran with, its claims of the family the ones checked,
        with at least one blocking claim, and the verdicts must follow from the report.
    check_claims
        Run the claims-file checks (:func:`verify_champion` does not: a claims file may change
        after a promotion).
    check_champion
        Require the champion the gate compared with to be the champion now.
    """
    client = _client(client)
    mv, bound, digest, problems = read_bound_gate(name, version, client)
    if bound is None:
        return BindingCheck(model_name=name, model_version=str(mv.version), bound=None,
                            digest=digest, problems=problems)
    b = bound.binding
    if b.library_version != barberpro_ml.__version__:
        problems.append(f"the gate ran with barberpro_ml {b.library_version}, this is "
                        f"{barberpro_ml.__version__}: re-run the gate")
    if check_champion:
        now = current_champion(name, client)
        if now != b.champion_version:
            problems.append(
                f"the champion moved since the gate ran (compared with {_v(b.champion_version)}, "
                f"now {_v(now)}): re-run `barberpro-ml gate --model {name} --version "
                f"{mv.version}` to compare with the current champion")
    problems += _champion_verdict_problems(bound)
    if check_claims:
        path = Path(claims_path if claims_path is not None else b.claims_path)
        problems += _claims_problems(bound, path, client, mv.run_id)
    return BindingCheck(model_name=name, model_version=str(mv.version), bound=bound,
                        digest=digest, problems=problems)


def _champion_verdict_problems(bound: BoundGateResult) -> list[str]:
    """The champion verdict must be about the bound champion and follow from its numbers."""
    ch, b = bound.result.champion, bound.binding
    problems: list[str] = []
    if b.champion_version is None or ch.metric is None:
        # no champion, or a family the claims file does not compare with its champion
        # (segments: the comparison is inside their id-stability metric)
        return problems
    if ch.champion_version != b.champion_version:
        problems.append(f"the champion verdict is about {_v(ch.champion_version)}, the gate is "
                        f"bound to {_v(b.champion_version)}")
        return problems
    if ch.verdict == "pass":
        # the gate decides on the effective margin (the file's margin, widened to what the test
        # set can detect; barberpro_ml.gates.check)
        lo, hi = ch.ci_low, ch.ci_high
        margin = ch.effective_margin if ch.effective_margin is not None else ch.margin
        if lo is None or hi is None or margin is None:
            problems.append("the champion verdict passes without a paired comparison's "
                            "interval and margin")
        elif ch.higher_is_better is not False and not lo > -margin:
            problems.append(f"the champion verdict passes although its lower bound {lo:+.4f} "
                            f"is not above -{margin:g}")
        elif ch.higher_is_better is False and not hi < margin:
            problems.append(f"the champion verdict passes although its upper bound {hi:+.4f} "
                            f"is not below {margin:g}")
    return problems


def _claims_problems(bound: BoundGateResult, claims_path: Path, client: MlflowClient,
                     run_id: str) -> list[str]:
    b = bound.binding
    problems: list[str] = []
    if not claims_path.is_file():
        return [f"claims file not found: {claims_path}"]
    try:
        claims = load_claims(claims_path)
    except ClaimsError as exc:
        return [*problems, f"the claims file is refused: {exc}"]
    digest = claims_file_digest(claims_path)
    if digest != b.claims_digest:
        problems.append(f"the claims file {claims_path} is not the one the gate ran with "
                        f"({b.claims_path}; content digest {digest[:12]} vs "
                        f"{b.claims_digest[:12]}): re-run the gate against it")
        return problems
    mine = [c for c in claims if c.family == b.family]
    ids = tuple(c.id for c in mine)
    if not mine:
        return [*problems, f"{claims_path} has no claims for family {b.family!r}"]
    if not any(c.blocking for c in mine):
        problems.append(f"{claims_path} has no blocking claim for family {b.family!r}: a gate "
                        "with nothing that can refuse is vacuous")
    if set(ids) != set(b.claim_ids):
        problems.append(f"the gate checked claims {sorted(b.claim_ids)}, the file's "
                        f"{b.family!r} claims are {sorted(ids)}")
    checked = {c.claim_id for c in bound.result.claims}
    unchecked = sorted(set(ids) - checked)
    if unchecked:
        problems.append(f"the gate result has no verdict for claims {unchecked}")
    report_text = _read_text(client, run_id, REPORT_ARTIFACT)
    if report_text is None:
        return problems
    report = _parse_report(report_text)
    if report is None:
        return [*problems, f"the evaluation report of run {run_id} cannot be read"]
    rederived = check(report, claims.for_family(b.family))
    recorded = {(c.check_id, c.verdict) for c in bound.result.claims}
    derived = {(c.check_id, c.verdict) for c in rederived.claims}
    if recorded != derived:
        differ = sorted({k for k, _ in recorded ^ derived})
        problems.append(f"the recorded verdicts do not follow from the evaluation report and "
                        f"the claims file (checks that differ: {differ[:5]})")
    return problems


def _parse_report(text: str) -> EvaluationReport | None:
    for kind in (ClassificationReport, EvaluationReport):
        try:
            return kind.model_validate_json(text)
        except ValidationError:
            continue
    return None


# --------------------------------------------------------------------------- consumers
class ChampionVerification(BaseModel):
    """Whether the ``@champion`` of a model is backed by a passing, bound gate result and a
    promotion-log entry (see :func:`verify_champion`)."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str | None
    verified: bool
    problems: list[str]
    gate_digest: str | None = None
    promoted_at: datetime | None = None

    def describe(self) -> str:
        """One line: verified, or why not."""
        if self.verified:
            return f"{self.model_name} v{self.version} is a verified champion"
        return (f"{self.model_name} @champion (v{self.version or '-'}) is not verified: "
                + "; ".join(self.problems))


def verify_champion(name: str, *, client: MlflowClient | None = None,
                    tracking_uri: str | None = None) -> ChampionVerification:
    """Check that the current ``@champion`` of ``name`` got there through :func:`promote`.

    Verified means: the champion version carries a bound gate result whose content matches its
    ``gate.digest`` tag, that passed, that is bound to this version and its source run, whose
    report is unchanged, and the promotion log's latest promotion of ``name`` is this version
    with this gate result (an alias moved by hand fails here).

    Parameters
    ----------
    name
        Registered model name.
    client, tracking_uri
        Where to look (default: the current tracking/registry store).

    Returns
    -------
    ChampionVerification
        ``verified`` and, when not, every problem found.
    """
    client = client or MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = current_champion(name, client)
    if version is None:
        return ChampionVerification(model_name=name, version=None, verified=False,
                                    problems=[f"{name} has no @champion"])
    check_ = binding_problems(name, version, check_claims=False, check_champion=False,
                              client=client)
    problems = list(check_.problems)
    if check_.bound is not None and not check_.bound.passed:
        problems.append(f"its gate result failed: {'; '.join(check_.bound.result.failures())}")
    log = promotion_log(name, client=client)
    promoted_at = None
    if log.empty:
        problems.append("the promotion log has no promotion of this model: the alias was set "
                        "outside `promote`")
    else:
        last = log.iloc[-1]
        if str(last["version"]) != version:
            problems.append(f"the promotion log's latest promotion is v{last['version']}, but "
                            f"@champion points to v{version}: the alias was moved outside "
                            "`promote`")
        elif check_.digest and last.get("gate_digest") and last["gate_digest"] != check_.digest:
            problems.append("the version's gate result is not the one its promotion was "
                            "judged on")
        else:
            promoted_at = last["at"]
    return ChampionVerification(model_name=name, version=version, verified=not problems,
                                problems=problems, gate_digest=check_.digest,
                                promoted_at=promoted_at)
