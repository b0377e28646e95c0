"""A readable model card (Markdown): data window, metrics with CIs beside baselines, slices,
gate verdicts, lineage and caveats.

Written for the person deciding whether to trust the model, after Mitchell et al. (2019),
"Model Cards for Model Reporting", FAT* '19: every number comes with its interval and with the
trivial baseline it must beat, and the caveats say what the numbers do not cover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from barberpro_ml.gates import GateResult

#: Slices smaller than this get a caveat: their intervals are too wide to compare levels.
SMALL_SLICE_ROWS = 100


def _num(v: float | None, spec: str = ".4f") -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, spec)


def _ci(est: MetricEstimate) -> str:
    return f"[{_num(est.ci_low)}, {_num(est.ci_high)}]"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def model_card(
    report: EvaluationReport,
    *,
    model_name: str,
    version: str | None = None,
    description: str | None = None,
    data_window: Mapping[str, object] | None = None,
    gate_result: GateResult | None = None,
    lineage: Mapping[str, str | None] | None = None,
    caveats: Sequence[str] = (),
    slice_metrics: Sequence[str] | None = None,
) -> str:
    """Render a model card as Markdown.

    Parameters
    ----------
    report
        The held-out evaluation.
    model_name, version
        Registered model name and version (if registered yet).
    description
        One paragraph: what the model predicts, for whom, and how it is used.
    data_window
        Labelled facts about the data, e.g. ``{"training cut-offs": "2024-01-01 .. 2024-06-01",
        "test as_of": "2024-09-01", "horizon_days": 60}``.
    gate_result
        The gate's verdicts, if the model was gated.
    lineage
        E.g. the tags from :func:`barberpro_ml.registry.tracking.log_lineage`.
    caveats
        Known limitations to state; the card adds its own (baseline, small slices, NaN metrics,
        failed claims, report notes).
    slice_metrics
        Metrics shown per slice (default: up to three of ``roc_auc``, ``accuracy``, ``ece``,
        ``mae``, ``ndcg_at_10``, whichever the slices have).

    Returns
    -------
    str
        Markdown.

    Examples
    --------
    >>> text = model_card(report, model_name="barberpro-churn", version="3")  # doctest: +SKIP
    >>> log_model_card(text)                                                 # doctest: +SKIP
    """
    title = f"# Model card: {model_name}" + (f" (version {version})" if version else "")
    lines = [title, ""]
    if description:
        lines += [description, ""]
    verdict = ""
    if gate_result is not None:
        verdict = " Gate: **PASSED**." if gate_result.passed else " Gate: **FAILED**."
    lines += [f"Family `{report.family}` ({report.kind}), evaluated on {report.n:,} held-out "
              f"rows; confidence intervals from {report.n_bootstrap:,} bootstrap replicates"
              f"{'' if report.seed is None else f' (seed {report.seed})'}.{verdict}", ""]

    lines += ["## Data window", ""]
    if data_window:
        lines += _table(["", "value"], [(k, v) for k, v in data_window.items()])
    else:
        lines.append("Not recorded.")
    lines.append("")

    lines += _metrics_section(report)
    lines += _slices_section(report.slices, slice_metrics)
    lines += _gate_section(gate_result)

    if lineage:
        lines += ["## Lineage", ""]
        lines += _table(["", "value"], [(k, "none" if v is None else f"`{v}`")
                                        for k, v in lineage.items()])
        lines.append("")

    lines += ["## Caveats", ""]
    lines += [f"- {c}" for c in [*caveats, *_automatic_caveats(report, gate_result)]]
    lines.append("")
    return "\n".join(lines)


def _metrics_section(report: EvaluationReport) -> list[str]:
    rows = []
    for name, est in report.metrics.items():
        base = report.baselines.get(name)
        rows.append((name, "higher" if est.higher_is_better else "lower", _num(est.value),
                     _ci(est), _num(base.value) if base else "",
                     _ci(base) if base else ""))
    conf = next(iter(report.metrics.values())).confidence if report.metrics else 0.95
    pct = f"{100 * conf:g}%"
    lines = ["## Metrics (held-out)", ""]
    lines += _table(["metric", "better", "value", f"{pct} CI", "baseline", "baseline CI"], rows)
    if "accuracy" in report.baselines:
        lines += ["", "The accuracy baseline is the majority class (\"nobody churns\"): a model "
                      "is only useful where it beats it."]
    lines.append("")
    return lines


def _default_slice_metrics(slices: Sequence[SliceReport]) -> list[str]:
    present = {m for s in slices for m in s.metrics}
    preferred = ["roc_auc", "accuracy", "ece", "mae", "ndcg_at_10"]
    chosen = [m for m in preferred if m in present][:3]
    return chosen or sorted(present)[:3]


def _slices_section(slices: Sequence[SliceReport], metrics: Sequence[str] | None) -> list[str]:
    if not slices:
        return []
    names = list(metrics) if metrics is not None else _default_slice_metrics(slices)
    lines = ["## Slices", ""]
    for dim in dict.fromkeys(s.dimension for s in slices):
        rows = []
        for s in (s for s in slices if s.dimension == dim):
            cells: list[object] = [s.level, f"{s.n:,}",
                                   "" if s.positives is None else f"{s.positives:,}"]
            for m in names:
                est = s.metrics.get(m)
                cells.append("" if est is None else f"{_num(est.value, '.3f')} "
                                                    f"[{_num(est.ci_low, '.3f')}, "
                                                    f"{_num(est.ci_high, '.3f')}]")
            rows.append(cells)
        lines += [f"### by {dim}", ""]
        lines += _table([dim, "rows", "positives", *names], rows)
        lines.append("")
    return lines


def _gate_section(gate: GateResult | None) -> list[str]:
    if gate is None:
        return ["## Gate verdicts", "", "Not gated.", ""]
    lines = ["## Gate verdicts", ""]
    rows: list[tuple[str, ...]] = []
    for c in gate.claims:
        ci = "" if c.ci_low is None or c.ci_high is None else \
            f"[{_num(c.ci_low)}, {_num(c.ci_high)}]"
        op = ">=" if c.direction == "at_least" else "<="
        rows.append((c.check_id, _num(c.observed), ci, f"{op} {c.claimed:g}", c.policy,
                     "" if c.baseline is None else _num(c.baseline),
                     "" if c.p_holm is None else _num(c.p_holm),
                     f"**{c.verdict}**", c.reason))
    ch = gate.champion
    rows.append(("champion", _num(ch.difference), "" if ch.ci_low is None or ch.ci_high is None
                 else f"[{_num(ch.ci_low)}, {_num(ch.ci_high)}]",
                 "" if ch.margin is None else f"margin {ch.margin:g}" + (
                     "" if ch.effective_margin is None
                     else f" (effective {ch.effective_margin:.4f})"), "paired", "", "",
                 f"**{ch.verdict}**", ch.reason))
    lines += _table(["check", "observed", "CI", "claim", "policy", "baseline", "p (Holm)",
                     "verdict", "reason"], rows)
    untestable = [c for c in gate.claims if c.verdict == "untestable"]
    if untestable:
        lines += ["", "Untestable slices (fewer positives or negatives than the floor's "
                      "`min_class_count`; they block promotion only with `untestable: block`): "
                  + ", ".join(f"{c.slice} ({c.class_count:,} of the scarcer class)"
                              if c.class_count is not None else str(c.slice)
                              for c in untestable) + "."]
    lines += ["", f"alpha {gate.alpha:g}, {gate.correction} correction; claims from "
                  f"`{gate.claims_path or 'in-memory claims'}`.", ""]
    return lines


def _automatic_caveats(report: EvaluationReport, gate: GateResult | None) -> list[str]:
    out = [f"All numbers come from one held-out set of {report.n:,} rows; the intervals cover "
           "sampling noise within it, not drift after it."]
    acc, base = report.metrics.get("accuracy"), report.baselines.get("accuracy")
    if acc is not None and base is not None and acc.ci_low <= base.value:
        out.append(f"Accuracy {_num(acc.value)} (CI lower bound {_num(acc.ci_low)}) is not "
                   f"clearly above the majority-class baseline {_num(base.value)}; judge the "
                   "model by its ranking (ROC/PR AUC) and calibration instead.")
    undefined = [n for n, e in report.metrics.items() if not math.isfinite(e.value)]
    if undefined:
        out.append(f"Undefined (NaN) on this data: {', '.join(undefined)}.")
    small = [f"{s.dimension}={s.level} ({s.n:,})" for s in report.slices
             if s.n < SMALL_SLICE_ROWS]
    if small:
        out.append(f"Slices with fewer than {SMALL_SLICE_ROWS} rows have wide intervals; do not "
                   f"compare them by point value: {', '.join(small[:10])}"
                   + (f" and {len(small) - 10} more" if len(small) > 10 else "") + ".")
    if gate is not None and not gate.passed:
        out.append("The gate refused this model: " + "; ".join(gate.failures()))
    out += list(report.notes)
    return out
