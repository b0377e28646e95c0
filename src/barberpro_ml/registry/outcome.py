"""What one training job reports back to the command line and the pipeline summary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.evaluation import EvaluationReport
from barberpro_ml.gates import GateResult


class HeadlineMetric(BaseModel):
    """A metric worth a column in the summary table: value and 95% CI."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float
    ci_low: float
    ci_high: float

    def render(self, digits: int = 3) -> str:
        """``0.812 [0.801, 0.824]``."""
        return f"{self.value:.{digits}f} [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


class TrainingOutcome(BaseModel):
    """The result of one family's train -> evaluate -> gate -> register -> promote job."""

    model_config = ConfigDict(frozen=True)

    family: str
    run_id: str
    model_name: str
    version: str | None
    gate_passed: bool
    promoted: bool
    champion_version: str | None
    headline: list[HeadlineMetric] = Field(default_factory=list)
    verdicts: list[str] = Field(default_factory=list)
    """One readable line per claim (``PASS accuracy >= 0.941: ...``)."""
    gate: GateResult | None = None
    """The full gate result (its rich rendering is the verdict table)."""
    notes: list[str] = Field(default_factory=list)
    """Context for the summary, e.g. the model's ROC AUC relative to the simulation oracle."""

    def to_text(self) -> str:
        """The verdict table and the notes, as plain text (what the scripts print)."""
        lines = [self.gate.to_text() if self.gate else "\n".join(self.verdicts)]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def headline_metrics(report: EvaluationReport, names: tuple[str, ...]) -> list[HeadlineMetric]:
    """The named metrics of ``report`` with their intervals, for the summary table."""
    return [HeadlineMetric(name=n, value=report.metric(n).value, ci_low=report.metric(n).ci_low,
                           ci_high=report.metric(n).ci_high) for n in names]


def verdict_lines(gate: GateResult) -> list[str]:
    """One readable line per claim, then the champion comparison (``PASS roc-auc-floor: ...``)."""
    return ([f"{c.verdict.upper():5} {c.check_id}: {c.reason}" for c in gate.claims]
            + [f"{gate.champion.verdict.upper():5} champion: {gate.champion.reason}"])
