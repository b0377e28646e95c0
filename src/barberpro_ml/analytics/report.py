"""A self-contained HTML report a person reads: KPIs, cohorts, funnel, forecast, gates.

:func:`report_frames` computes what the page shows from the event tables known at ``as_of``
(:func:`~barberpro_ml.analytics.kpis`, :func:`~barberpro_ml.analytics.cohorts`,
:func:`~barberpro_ml.analytics.funnel`); :func:`render_report` turns those frames, plus two
inputs computed elsewhere, into one HTML page:

- the **forecast** (a :class:`ForecastSection`: weekly history, the forecast with its 89%
  interval per horizon, and the interval's backtested coverage). Optional: without one the
  page says plainly that no forecast model was available, and why when told;
- the **gate table** of every model family, a plain frame with the columns of
  :data:`GATE_TABLE_COLUMNS` (``barberpro_ml.registry.champion_gate_table`` reads it from the
  registry; this module, a stage before the registry, only renders it).

The page is self-contained: charts are PNG images embedded as ``data:`` URIs, the style sheet
is inline, fonts are the reader's system fonts, and nothing is fetched from the network. A
small inline script sets ``data-charts-rendered`` on ``<body>`` to the number of chart images
the browser laid out with a non-zero size (``data-charts-expected`` is how many there are), so
a headless browser can check that the page renders with its charts. Every string that comes
from the data or the registry is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from barberpro_ml.analytics.catalogue import MEASURES
from barberpro_ml.analytics.cohorts import FUNNEL_STAGES, cohorts, funnel
from barberpro_ml.analytics.kpis import kpis
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.cutoff import AsOf, to_as_of
from barberpro_ml.definitions import DEFAULT_DEFINITIONS, Definitions
from barberpro_ml.errors import InputError, NotEnoughDataError

__all__ = [
    "FORECAST_COLUMNS",
    "GATE_TABLE_COLUMNS",
    "HISTORY_COLUMNS",
    "REPORT_MEASURES",
    "ForecastCoverage",
    "ForecastSection",
    "ReportFrames",
    "build_report",
    "check_report_path",
    "forecast_section_html",
    "plot_cohort_heatmap",
    "plot_forecast",
    "plot_funnel",
    "plot_kpi_trends",
    "render_report",
    "report_frames",
    "write_report",
]

REPORT_MEASURES: Final = (
    "bookings", "completed_visits", "net_revenue", "average_ticket", "cancellation_rate",
    "no_show_rate", "active_customers", "new_customers", "average_rating",
)
"""The headline measures of the KPI table, in column order (catalogue names)."""

_LABELS: Final[Mapping[str, str]] = {
    "bookings": "Bookings", "completed_visits": "Completed visits",
    "net_revenue": "Net revenue", "average_ticket": "Average ticket",
    "cancellation_rate": "Cancellation rate", "no_show_rate": "No-show rate",
    "active_customers": "Active customers", "new_customers": "New customers",
    "average_rating": "Average rating",
}
_STAGE_LABELS: Final[Mapping[str, str]] = {
    "signed_up": "Signed up", "first_booking": "First booking", "first_visit": "First visit",
    "second_visit": "Second visit", "retained": "Retained",
}

HISTORY_COLUMNS: Final = ("ds", "y")
"""Columns of a forecast's history frame: the week's start and the observed value."""
FORECAST_COLUMNS: Final = ("ds", "horizon", "mean", "lower", "upper")
"""Columns of a forecast frame: the week, weeks ahead (1..13), the mean and the interval."""
MAX_HORIZON: Final = 13

GATE_TABLE_COLUMNS: Final = (
    "model_name", "family", "champion_version", "verified", "verification", "check",
    "metric", "claimed", "direction", "observed", "ci_low", "ci_high", "verdict", "blocking",
    "reason",
)
"""Columns :func:`render_report` needs in a gate table: one row per (model, check); a model
without a champion or without a readable gate result has one row with ``check`` missing.
``verification`` says why a champion is not verified (empty when it is)."""

_CHANNEL_COLOURS: Final = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ForecastCoverage:
    """How often the forecast's interval held the actual value in a backtest.

    Parameters
    ----------
    level
        Nominal level of the interval (0.89 for the seed's "89% intervals").
    coverage
        Share of backtest (origin, horizon) pairs whose actual value fell in the interval.
    ci_low, ci_high
        Confidence interval of that share.
    n
        Number of (origin, horizon) pairs it was measured on.
    """

    level: float
    coverage: float
    ci_low: float
    ci_high: float
    n: int

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise InputError(f"forecast coverage: level must be in (0, 1), got {self.level!r}")
        values = (self.ci_low, self.coverage, self.ci_high)
        if not all(math.isfinite(v) and 0 <= v <= 1 for v in values) or not (
                self.ci_low <= self.coverage <= self.ci_high):
            raise InputError("forecast coverage: expected 0 <= ci_low <= coverage <= ci_high "
                             f"<= 1, got {self.ci_low!r}, {self.coverage!r}, {self.ci_high!r}")
        if self.n < 1:
            raise InputError(f"forecast coverage: n (origins x horizons) must be >= 1, got "
                             f"{self.n!r}")

    def describe(self) -> str:
        """``89% interval covered 86.5% [84.1%, 88.7%] of 520 backtest points``."""
        return (f"{_pct(self.level, 0)} interval covered {_pct(self.coverage)} "
                f"[{_pct(self.ci_low)}, {_pct(self.ci_high)}] of {self.n:,} backtest "
                "points (origins x horizons)")


@dataclass(frozen=True)
class ForecastSection:
    """One weekly series with its forecast, as the forecasting module hands it over.

    Parameters
    ----------
    history
        ``ds`` (the week's start, a Timestamp) and ``y`` (the observed value), one row per
        week in increasing order.
    forecast
        ``ds``, ``horizon`` (weeks ahead, 1..13), ``mean``, ``lower``, ``upper`` (the
        interval at ``coverage.level``), one row per horizon, after the history.
    coverage
        The interval's backtested coverage.
    series
        What is forecast, for titles (``Completed visits``).
    unit
        The values' unit (``visits per week``).
    model
        The model's name, shown in the caption (optional).

    Raises
    ------
    InputError
        A missing column, a missing or non-increasing ``ds``, a horizon outside 1..13,
        ``lower <= mean <= upper`` violated or missing values (the message says which).
    """

    history: pd.DataFrame
    forecast: pd.DataFrame
    coverage: ForecastCoverage
    series: str = "Completed visits"
    unit: str = "visits per week"
    model: str | None = None

    def __post_init__(self) -> None:
        _require_columns(self.history, HISTORY_COLUMNS, "forecast history")
        _require_columns(self.forecast, FORECAST_COLUMNS, "forecast")
        if self.history.empty or self.forecast.empty:
            raise InputError("forecast: the history and the forecast need at least one row")
        for frame, what in ((self.history, "forecast history"), (self.forecast, "forecast")):
            if not pd.api.types.is_datetime64_any_dtype(frame["ds"]):
                raise InputError(f"{what}: ds must be timestamps, got {frame['ds'].dtype}")
            if not frame["ds"].is_monotonic_increasing or frame["ds"].isna().any() \
                    or frame["ds"].duplicated().any():
                raise InputError(f"{what}: ds must be unique, increasing and not missing")
        values = self.forecast[["mean", "lower", "upper"]].astype("float64")
        if values.isna().to_numpy().any():
            raise InputError("forecast: mean, lower and upper must not be missing")
        bad = int((~((values["lower"] <= values["mean"]) & (values["mean"] <= values["upper"])))
                  .sum())
        if bad:
            raise InputError(f"forecast: {bad} rows break lower <= mean <= upper")
        horizon = self.forecast["horizon"]
        if not pd.api.types.is_integer_dtype(horizon) or not horizon.between(
                1, MAX_HORIZON).all():
            raise InputError(f"forecast: horizon must be whole weeks 1..{MAX_HORIZON}, got "
                             f"{sorted(horizon.unique().tolist())[:5]}")
        if self.forecast["ds"].iloc[0] <= self.history["ds"].iloc[-1]:
            raise InputError("forecast: the first forecast week must come after the last "
                             f"history week ({self.history['ds'].iloc[-1]:%Y-%m-%d})")


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {', '.join(missing)}; expected "
                         f"{', '.join(columns)}, got {', '.join(map(str, frame.columns))}")


@dataclass(frozen=True)
class ReportFrames:
    """What the page shows from the event tables, computed at ``as_of``."""

    as_of: pd.Timestamp
    span_start: pd.Timestamp
    """The first booking in the data (the event history's start)."""
    span_end: pd.Timestamp
    """The last event in the data."""
    customers: int
    """Customers signed up by ``as_of``."""
    bookings: int
    """Bookings made by ``as_of``."""
    kpis: pd.DataFrame
    """:func:`kpis` of :data:`REPORT_MEASURES` by month, the last months up to ``as_of``."""
    cohorts: pd.DataFrame
    """:func:`cohorts` (retention) of the signup months inside the event history."""
    funnel: pd.DataFrame
    """:func:`funnel` by acquisition channel."""
    funnel_total: pd.DataFrame
    """:func:`funnel` of all customers."""
    definitions: Definitions = DEFAULT_DEFINITIONS
    data_name: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Sentences the page shows under its title (a partial month, an ``as_of`` past the
    data's last event)."""


def _month_start(stamp: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(year=stamp.year, month=stamp.month, day=1)


def report_frames(data: MarketplaceData, as_of: AsOf | None = None, *, months: int = 12,
                  cohort_months: int = 24, definitions: Definitions = DEFAULT_DEFINITIONS,
                  data_name: str | None = None) -> ReportFrames:
    """Compute the KPI, cohort and funnel frames the report shows, from the events known at
    ``as_of``.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The report's cut-off (naive UTC); default the data's last event. It must not be
        before the first booking.
    months
        Calendar months of the KPI table, the last one the month of ``as_of`` (partial when
        ``as_of`` falls inside it).
    cohort_months
        The most recent signup months of the cohort heatmap. Only months from the first
        booking's month on are shown: customers who signed up earlier had visits before the
        event history begins, which the data do not hold.
    definitions
        The shared business definitions (active window, retention horizon, currency).
    data_name
        The data set's name, for the title.

    Returns
    -------
    ReportFrames

    Raises
    ------
    InputError
        An unreadable ``as_of``, or one before the first booking (the message gives the
        data's span).
    NotEnoughDataError
        The data hold no booking.
    """
    if months < 1 or cohort_months < 1:
        raise InputError(f"months and cohort_months must be >= 1, got {months}, "
                         f"{cohort_months}")
    if data.bookings.empty:
        raise NotEnoughDataError("the data hold no bookings: there is nothing to report on")
    span_start = pd.Timestamp(data.bookings["created_at"].min())
    span_end = data.observation_end
    cut = span_end if as_of is None else to_as_of(as_of, name="as_of")
    if cut < span_start:
        raise InputError(f"as_of {cut} is before the data start: the event history runs from "
                         f"{span_start:%Y-%m-%d %H:%M} (first booking) to "
                         f"{span_end:%Y-%m-%d %H:%M}; choose an as_of in that range")
    notes = []
    if cut > span_end:
        notes.append("The cut-off is after the last event in the data "
                     f"({span_end:%Y-%m-%d %H:%M}): nothing is known about the time in "
                     "between, so it shows as no activity.")
    first_month = _month_start(cut) - pd.DateOffset(months=months - 1)
    table = kpis(data, list(REPORT_MEASURES), freq="month", start=first_month, as_of=cut,
                 definitions=definitions)
    next_month = _month_start(cut) + pd.DateOffset(months=1)
    if cut < next_month - pd.Timedelta(1, "ns"):
        notes.append(f"The last month, {cut:%B %Y}, is partial: it runs to the cut-off "
                     f"({cut:%Y-%m-%d %H:%M}).")
    retention = cohorts(data, as_of=cut, metric="retention")
    oldest = max(_month_start(span_start),
                 _month_start(cut) - pd.DateOffset(months=cohort_months))
    retention = retention[retention["cohort"] >= oldest].reset_index(drop=True)
    by_channel = funnel(data, as_of=cut, by="acquisition_channel", definitions=definitions)
    total = funnel(data, as_of=cut, by=None, definitions=definitions)
    return ReportFrames(
        as_of=cut, span_start=span_start, span_end=span_end,
        customers=int((data.customers["signup_at"] <= cut).sum()),
        bookings=int((data.bookings["created_at"] <= cut).sum()),
        kpis=table, cohorts=retention, funnel=by_channel, funnel_total=total,
        definitions=definitions, data_name=data_name, notes=tuple(notes))


# --------------------------------------------------------------------------- formatting
def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and not math.isfinite(value)


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if _missing(value) else f"{100 * float(value):.{digits}f}%"  # type: ignore[arg-type]


def unit_label(measure: str, currency: str) -> str:
    """The unit of a catalogue measure as the page prints it (money in the currency)."""
    unit = MEASURES[measure].unit
    if unit == "share":
        return "% of appointments"
    return unit.replace("money", currency)


def format_measure(measure: str, value: object, currency: str) -> str:
    """A catalogue measure's value as the KPI table prints it, with its unit.

    Money: ``USD 27,564`` (an average ticket to the cent); shares: ``8.6%``; stars:
    ``4.53``; counts: ``1,234``; a missing value: ``n/a``.
    """
    if _missing(value):
        return "n/a"
    v = float(value)  # type: ignore[arg-type]
    unit = MEASURES[measure].unit
    if unit == "money":
        return f"{currency} {v:,.0f}"
    if unit == "money per visit":
        return f"{currency} {v:,.2f}"
    if unit == "share":
        return _pct(v)
    if unit == "stars":
        return f"{v:.2f}"
    return f"{v:,.0f}"


def _fig_to_img(fig: Figure, alt: str, css_class: str = "chart") -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<img class="{css_class}" alt="{_esc(alt)}" '
            f'src="data:image/png;base64,{encoded}">')


# --------------------------------------------------------------------------- figures
def plot_kpi_trends(table: pd.DataFrame, currency: str = "USD", *,
                    partial_last: bool = False) -> Figure:
    """Four small charts of the KPI table by month: net revenue, completed visits, active
    customers, and the cancellation and no-show rates.

    With ``partial_last`` the last month (cut at ``as_of``) is drawn as a hollow point on a
    dotted segment, so a month to date does not read as a fall.
    """
    fig = Figure(figsize=(10, 5.2))
    axes = fig.subplots(2, 2, sharex=True)
    months = pd.to_datetime(table["month"])
    full = len(table) - 1 if partial_last else len(table)

    def draw(ax: Any, values: pd.Series, colour: str, marker: str, label: str | None) -> None:
        ax.plot(months[:full], values[:full], marker=marker, color=colour, label=label)
        if partial_last and len(table) >= 2:
            ax.plot(months[full - 1:], values[full - 1:], ls=":", color=colour)
            ax.plot(months[full:], values[full:], marker=marker, ls="none", color=colour,
                    markerfacecolor="white")

    panels = (("net_revenue", f"Net revenue ({currency})"),
              ("completed_visits", "Completed visits"),
              ("active_customers", "Active customers (month end)"))
    for ax, (measure, title) in zip(axes.flat, panels, strict=False):
        draw(ax, table[measure], "#1f77b4", "o", None)
        ax.set_title(title, fontsize=10)
    ax = axes.flat[3]
    draw(ax, 100 * table["cancellation_rate"], "#d62728", "o", "cancellation rate")
    draw(ax, 100 * table["no_show_rate"], "#ff7f0e", "s", "no-show rate")
    ax.set_title("Cancellations and no-shows (% of appointments)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    for ax in axes.flat:
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.xaxis.set_major_formatter(DateFormatter("%b %Y"))  # type: ignore[no-untyped-call]
    if partial_last:
        fig.suptitle("hollow point: the last month to the cut-off (partial)", fontsize=8,
                     x=0.99, ha="right", color="#556070")
    fig.tight_layout()
    return fig


def plot_cohort_heatmap(table: pd.DataFrame) -> Figure:
    """Retention of signup cohorts (rows) by months since signup (columns), as a heatmap.

    ``table`` is :func:`~barberpro_ml.analytics.cohorts`' retention frame; each cell is
    annotated with its percentage when the grid is small enough to read.
    """
    grid = table.pivot(index="cohort", columns="periods_since_signup", values="retention")
    sizes = table.groupby("cohort")["customers"].first()
    n_rows, n_cols = grid.shape
    fig = Figure(figsize=(min(2.5 + 0.48 * n_cols, 14), 1.2 + 0.32 * n_rows))
    ax = fig.subplots()
    values = grid.to_numpy(dtype="float64")
    image = ax.imshow(np.ma.masked_invalid(100 * values), cmap="YlGnBu", aspect="auto",
                      vmin=0, vmax=100)
    ax.set_xticks(range(n_cols), [str(c) for c in grid.columns], fontsize=8)
    ax.set_yticks(range(n_rows), [f"{c:%Y-%m} (n={sizes[c]:,})" for c in grid.index],
                  fontsize=8)
    ax.set_xlabel("months since signup (0 = the signup month)")
    ax.set_ylabel("signup month (customers)")
    if n_rows * n_cols <= 700:
        for (i, j), v in np.ndenumerate(values):
            if math.isfinite(v):
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6.5,
                        color="white" if v > 0.55 else "#222222")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    colorbar.set_label("% of the cohort with a completed visit in the month")
    ax.set_title("Monthly retention of signup cohorts", fontsize=11)
    fig.tight_layout()
    return fig


def plot_funnel(table: pd.DataFrame, by: str = "acquisition_channel") -> Figure:
    """Conversion of each funnel step by group, with its confidence interval as error bars.

    ``table`` is :func:`~barberpro_ml.analytics.funnel`'s frame split by ``by``.
    """
    steps = list(FUNNEL_STAGES[1:])
    groups = list(dict.fromkeys(table[by].astype(str)))
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    width = 0.8 / max(len(groups), 1)
    for g, group in enumerate(groups):
        rows = table[table[by].astype(str) == group]
        rows = rows.set_index(rows["stage"].astype(str))
        rate = np.array([rows.at[s, "conversion"] for s in steps], dtype="float64")
        low = np.array([rows.at[s, "conversion_ci_low"] for s in steps], dtype="float64")
        high = np.array([rows.at[s, "conversion_ci_high"] for s in steps], dtype="float64")
        x = np.arange(len(steps)) + (g - (len(groups) - 1) / 2) * width
        ax.bar(x, 100 * rate, width=width * 0.95, label=group,
               color=_CHANNEL_COLOURS[g % len(_CHANNEL_COLOURS)])
        ax.errorbar(x, 100 * rate, yerr=100 * np.vstack([rate - low, high - rate]),
                    fmt="none", ecolor="#222222", elinewidth=1, capsize=2)
    ax.set_xticks(range(len(steps)),
                  [f"{_STAGE_LABELS[FUNNEL_STAGES[i]]}\n-> {_STAGE_LABELS[s]}"
                   for i, s in enumerate(steps)], fontsize=9)
    ax.set_ylabel("conversion from the previous stage (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(groups), 5), loc="upper center",
              bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax.set_title("Funnel conversion by acquisition channel (bars: rate; whiskers: "
                 "95% interval)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_forecast(section: ForecastSection, *, history_weeks: int = 52) -> Figure:
    """Fan chart: the last ``history_weeks`` of history, the forecast mean and its interval,
    titled with the interval's backtested coverage."""
    history = section.history.tail(history_weeks)
    forecast = section.forecast
    cov = section.coverage
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    ax.plot(history["ds"], history["y"], color="#333333", lw=1.5, label="actual")
    # join the fan to the last actual week so the chart reads as one line
    last = history.iloc[-1]
    ds = pd.concat([pd.Series([last["ds"]]), forecast["ds"]], ignore_index=True)
    mean = np.concatenate([[float(last["y"])], forecast["mean"].to_numpy(dtype="float64")])
    lower = np.concatenate([[float(last["y"])], forecast["lower"].to_numpy(dtype="float64")])
    upper = np.concatenate([[float(last["y"])], forecast["upper"].to_numpy(dtype="float64")])
    ax.fill_between(ds, lower, upper, color="#1f77b4", alpha=0.25,
                    label=f"{_pct(cov.level, 0)} interval")
    ax.plot(ds, mean, color="#1f77b4", lw=2, ls="--", label="forecast (mean)")
    ax.axvline(last["ds"], color="#999999", lw=1, ls=":")
    ax.set_ylabel(section.unit)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{section.series}: {len(forecast)}-week forecast\n"
                 f"backtest: {cov.describe()}", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- sections
def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css_class: str = "") -> str:
    """An HTML table; the cells are already-escaped HTML."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return (f'<table class="{css_class}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _td(text: str, *, value: object = None, css: str = "num", attrs: str = "") -> str:
    data = "" if value is None or _missing(value) else f' data-value="{_esc(value)}"'
    return f'<td class="{css}"{data}{attrs}>{text}</td>'


def kpi_section(frames: ReportFrames) -> str:
    """The KPI table (months x headline measures) with units and the definitions."""
    currency = frames.definitions.currency
    table = frames.kpis
    header = ["Month"] + [
        f"{_esc(_LABELS[m])}<br><span class=\"unit\">{_esc(unit_label(m, currency))}</span>"
        for m in REPORT_MEASURES]
    rows = []
    for _, row in table.iterrows():
        month = pd.Timestamp(row["month"])
        partial = (month == _month_start(frames.as_of)
                   and frames.as_of < month + pd.DateOffset(months=1) - pd.Timedelta(1, "ns"))
        label = f"{month:%b %Y}" + (" <span class=\"unit\">(to date)</span>" if partial else "")
        cells = [f'<th scope="row">{label}</th>']
        for m in REPORT_MEASURES:
            text = _esc(format_measure(m, row[m], currency))
            if m == "average_rating" and not _missing(row["average_rating_ci_low"]):
                text += (f'<br><span class="ci">[{row["average_rating_ci_low"]:.2f}, '
                         f'{row["average_rating_ci_high"]:.2f}]</span>')
            cells.append(_td(text, value=row[m],
                             attrs=f' data-measure="{m}" data-month="{month:%Y-%m}"'))
        rows.append(cells)
    definitions = "".join(
        f"<li><b>{_esc(_LABELS[m])}</b> (<code>{_esc(m)}</code>, "
        f"{_esc(unit_label(m, currency))}): {_esc(MEASURES[m].description)} "
        f"<i>Formula:</i> {_esc(MEASURES[m].formula)}; counted by "
        f"<code>{_esc(MEASURES[m].timestamp)}</code>.</li>" for m in REPORT_MEASURES)
    window = frames.definitions.active_window_days
    intro = (f"<p>The headline measures for the last {len(table)} calendar months up to the "
             f"cut-off. Visits, cancellations, no-shows and revenue count in the month the "
             f"appointment was scheduled, bookings in the month they were made. A customer is "
             f"<i>active</i> with a completed visit in the {window} days up to the month's "
             f"end, and <i>new</i> in the month of their first completed visit.</p>")
    if table.empty:
        return intro + "<p class=\"note\">No events fall in these months.</p>"
    return (intro + _table(header, rows, "kpi") + _trend_figure(frames) +
            '<div class="footnote"><p>Definitions (from the KPI catalogue, '
            "<code>barberpro_ml.analytics.MEASURES</code>); the average rating's interval is "
            f"a 95% Student-t interval.</p><ol>{definitions}</ol></div>")


def _trend_figure(frames: ReportFrames) -> str:
    """The KPI trend chart, when there are at least two months to draw."""
    if len(frames.kpis) < 2:
        return ""
    last = pd.Timestamp(frames.kpis["month"].iloc[-1])
    partial = frames.as_of < last + pd.DateOffset(months=1) - pd.Timedelta(1, "ns")
    fig = plot_kpi_trends(frames.kpis, frames.definitions.currency, partial_last=partial)
    return _figure(fig, "Monthly trends of net revenue, completed visits, active customers "
                        "and the cancellation and no-show rates.")


def _figure(fig: Figure, caption: str) -> str:
    return (f"<figure>{_fig_to_img(fig, caption)}<figcaption>{_esc(caption)}</figcaption>"
            "</figure>")


def cohort_section(frames: ReportFrames) -> str:
    """The cohort heatmap with a sentence on month-1 and month-3 retention."""
    table = frames.cohorts
    intro = ("<p>Each row is the customers who signed up in one month; each cell the share of "
             "them with a completed visit in the month so many months after signing up. A "
             "cell appears once its month has ended by the cut-off. Only signup months from "
             f"the start of the event history ({frames.span_start:%B %Y}) on are shown: "
             "earlier customers' first visits are not in the data.</p>")
    if table.empty:
        return intro + "<p class=\"note\">No signup month in the event history has ended yet.</p>"
    sentences = []
    for k in (1, 3, 6):
        cell = table[table["periods_since_signup"] == k]
        if len(cell):
            rate = cell["visiting_customers"].sum() / max(int(cell["customers"].sum()), 1)
            sentences.append(f"{_pct(rate)} of customers visited in month {k} after signing "
                             f"up (pooled over the {len(cell)} cohorts old enough)")
    summary = f"<p>{_esc('; '.join(sentences))}.</p>" if sentences else ""
    fig = plot_cohort_heatmap(table)
    return intro + summary + _figure(
        fig, "Retention heatmap: signup month (rows, with the cohort's size) by months since "
             "signup (columns); cell = % of the cohort with a completed visit that month.")


def funnel_section(frames: ReportFrames) -> str:
    """The funnel chart and its table: customers and conversion [CI] per stage and channel."""
    by = "acquisition_channel"
    horizon = frames.definitions.churn_horizon_days
    intro = ("<p>Every customer who signed up by the cut-off, followed through five stages. "
             "Each conversion is the share of the previous stage that reached the next, with a "
             "95% Wilson interval. <i>Retained</i> means the second visit came within "
             f"{horizon} days of the first; customers whose first visit is less than {horizon} "
             "days old cannot be judged yet and are left out of that rate (counted as "
             "<i>not yet judged</i>).</p>")
    table = frames.funnel
    if table.empty:
        return intro + "<p class=\"note\">No customer has signed up by the cut-off.</p>"
    fig = plot_funnel(table, by)
    header = ["Acquisition channel"] + [
        f"{_esc(_STAGE_LABELS[s])}<br><span class=\"unit\">customers; conversion "
        "[95% CI]</span>" if i else f"{_esc(_STAGE_LABELS[s])}<br><span class=\"unit\">"
        "customers</span>" for i, s in enumerate(FUNNEL_STAGES)] + [
        "Not yet judged<br><span class=\"unit\">customers</span>"]
    rows = []
    groups: list[tuple[str, pd.DataFrame]] = [
        (str(g), part) for g, part in table.groupby(by, observed=True, sort=False)]
    groups.append(("All customers", frames.funnel_total))
    for name, part in groups:
        by_stage = {str(s): r for s, r in zip(part["stage"], part.to_dict("records"),
                                               strict=True)}
        cells = [f'<th scope="row">{_esc(name)}</th>']
        for i, stage in enumerate(FUNNEL_STAGES):
            r = by_stage[stage]
            text = f"{int(r['customers']):,}"
            if i:
                text += (f"<br>{_pct(r['conversion'])} <span class=\"ci\">"
                         f"[{_pct(r['conversion_ci_low'])}, {_pct(r['conversion_ci_high'])}]"
                         "</span>")
            cells.append(_td(text, value=None if not i else r["conversion"],
                             attrs=f' data-stage="{stage}"'))
        cells.append(_td(f"{int(by_stage['retained']['not_yet_judged']):,}"))
        rows.append(cells)
    return intro + _figure(fig, "Conversion from each funnel stage to the next, by "
                                "acquisition channel, with 95% Wilson intervals.") + \
        _table(header, rows, "funnel")


def forecast_section_html(section: ForecastSection | None, reason: str | None = None) -> str:
    """The forecast section: the fan chart and its caption, or a plain statement that no
    forecast model was available (with ``reason`` when given)."""
    if section is None:
        why = f" Reason: {_esc(reason)}" if reason else ""
        return ('<p class="note unavailable" id="no-forecast">No forecast model was available '
                f"for this report, so it has no forecast.{why}</p>")
    cov = section.coverage
    nominal = _pct(cov.level, 0)
    verdict = (f"consistent with its nominal {nominal}" if cov.ci_low <= cov.level <= cov.ci_high
               else f"below its nominal {nominal}: the interval is too narrow"
               if cov.ci_high < cov.level
               else f"above its nominal {nominal}: the interval is wider than it needs to be")
    model = f" by {_esc(section.model)}" if section.model else ""
    first, last = section.forecast["ds"].iloc[0], section.forecast["ds"].iloc[-1]
    caption = (f"{section.series} ({section.unit}): actual weekly values and the forecast for "
               f"{first:%Y-%m-%d} to {last:%Y-%m-%d}, shaded by its "
               f"{_pct(cov.level, 0)} interval. Backtest: the {_pct(cov.level, 0)} interval "
               f"covered {_pct(cov.coverage)} [95% CI {_pct(cov.ci_low)}, {_pct(cov.ci_high)}] "
               f"of {cov.n:,} (origin, horizon) points, {verdict}.")
    rows = [[f'<th scope="row">{r["ds"]:%Y-%m-%d}</th>', _td(f"{int(r['horizon'])}"),
             _td(f"{r['mean']:,.1f}", value=r["mean"]),
             _td(f"[{r['lower']:,.1f}, {r['upper']:,.1f}]")]
            for r in section.forecast.to_dict("records")]
    table = _table(["Week", "Weeks ahead", f"Forecast<br><span class=\"unit\">"
                    f"{_esc(section.unit)}</span>", f"{_pct(cov.level, 0)} interval"], rows,
                   "forecast")
    return (f"<p>A weekly forecast{model} of {_esc(section.series.lower())}, "
            f"{len(section.forecast)} weeks ahead.</p>"
            + _figure(plot_forecast(section), caption)
            + f"<details><summary>Forecast table</summary>{table}</details>")


def gate_section(gates: pd.DataFrame | None, note: str | None = None) -> str:
    """The gate table: every model family's @champion, whether it is verified, and the
    verdict of each claim its bound gate result checked."""
    intro = ("<p>Each model family is promoted to <i>@champion</i> only through its accuracy "
             "gate: every claim (from the claims file) is judged on held-out data, and passes "
             "only when the lower end of its confidence interval clears the claimed value. "
             "<i>Verified</i> means the champion's bound gate result still checks out and the "
             "promotion log recorded its promotion. Non-blocking claims are reported but do "
             "not decide promotion.</p>")
    if gates is None:
        why = _esc(note or "No registry was read.")
        return intro + f'<p class="note" id="no-registry">{why}</p>'
    _require_columns(gates, GATE_TABLE_COLUMNS, "gate table")
    extra = f'<p class="source">{_esc(note)}</p>' if note else ""
    if gates.empty:
        return intro + extra + '<p class="note">No registered model families.</p>'
    header = ["Model", "Champion", "Verified", "Claim", "Metric", "Claimed",
              "Estimate [CI]", "Verdict", "Blocking", "Why"]
    rows = []
    for model, part in gates.groupby("model_name", sort=False):
        first = part.iloc[0]
        champion = first["champion_version"]
        has = not _missing(champion) and str(champion) != ""
        verified = bool(first["verified"]) if has else False
        status = ("<span class=\"pass\">verified</span>" if verified else
                  "<span class=\"fail\">not verified</span>" if has else "&ndash;")
        problem = str(first["verification"]) if not _missing(first["verification"]) else ""
        if problem and has and not verified:
            status += f'<br><span class="why">{_esc(problem)}</span>'
        lead = [f'<th scope="row" rowspan="{len(part)}">{_esc(model)}<br>'
                f'<span class="unit">{_esc(first["family"])}</span></th>',
                f'<td rowspan="{len(part)}">{"v" + _esc(champion) if has else "no champion"}'
                "</td>", f'<td rowspan="{len(part)}">{status}</td>']
        for i, (_, r) in enumerate(part.iterrows()):
            cells = list(lead) if i == 0 else []
            if _missing(r["check"]) and not has:
                why = f" ({problem})" if problem and problem != "no champion" else ""
                cells.append(f'<td colspan="7" class="note">Nothing promoted{_esc(why)}.</td>')
            elif _missing(r["check"]):
                cells.append(f'<td colspan="7" class="note">'
                             f"{_esc(problem or 'no gate result to show')}</td>")
            else:
                sign = {"at_least": "&ge; ", "at_most": "&le; ",
                        "within": "inside the CI: "}.get(str(r["direction"]), "")
                claimed = "&ndash;" if _missing(r["claimed"]) else f"{sign}{r['claimed']:.4g}"
                estimate = "&ndash;" if _missing(r["observed"]) else f"{r['observed']:.4f}"
                if not _missing(r["ci_low"]) and not _missing(r["ci_high"]):
                    estimate += f' <span class="ci">[{r["ci_low"]:.4f}, {r["ci_high"]:.4f}]</span>'
                verdict = str(r["verdict"])
                css = {"pass": "pass", "fail": "fail"}.get(verdict, "other")
                cells += [
                    f"<td><code>{_esc(r['check'])}</code></td>",
                    f"<td>{_esc(r['metric'] if not _missing(r['metric']) else '')}</td>",
                    _td(claimed), _td(estimate),
                    f'<td><span class="{css}">{_esc(verdict)}</span></td>',
                    f"<td>{'yes' if bool(r['blocking']) else 'no'}</td>",
                    f'<td class="why">{_esc(r["reason"] if not _missing(r["reason"]) else "")}'
                    "</td>"]
            rows.append(cells)
    return intro + extra + _table(header, rows, "gates")


# --------------------------------------------------------------------------- the page
_STYLE: Final = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1d2330; margin: 0 auto; max-width: 1180px; padding: 24px 32px 64px;
       line-height: 1.45; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 2px solid #e3e7ee;
       padding-bottom: 4px; }
.subtitle { color: #556070; margin-top: 0; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #e3e7ee; padding: 5px 8px; vertical-align: top;
         text-align: left; }
thead th { background: #f4f6fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.unit, .ci, .why { color: #6a7384; font-size: 11px; font-weight: normal; }
td.why { max-width: 260px; overflow-wrap: anywhere; }
.source { color: #556070; font-size: 13px; }
.note { background: #fff8e6; border-left: 4px solid #f0b429; padding: 8px 12px; }
.pass { color: #0b7a3b; font-weight: 600; } .fail { color: #b42318; font-weight: 600; }
.other { color: #6a7384; font-weight: 600; }
figure { margin: 16px 0; } figcaption { color: #556070; font-size: 13px; }
img.chart { max-width: 100%; height: auto; display: block; }
.footnote { font-size: 12px; color: #3d4656; } .footnote li { margin-bottom: 3px; }
code { font-size: 12px; }
"""

_CHECK_SCRIPT: Final = """
window.addEventListener("load", function () {
  var charts = document.querySelectorAll("img.chart");
  var rendered = 0;
  charts.forEach(function (img) {
    var box = img.getBoundingClientRect();
    if (img.complete && img.naturalWidth > 0 && box.width > 0 && box.height > 0) {
      rendered += 1;
    }
  });
  document.body.setAttribute("data-charts-rendered", String(rendered));
});
"""


def render_report(frames: ReportFrames, *, gates: pd.DataFrame | None = None,
                  gates_note: str | None = None, forecast: ForecastSection | None = None,
                  forecast_note: str | None = None, title: str = "Marketplace report"
                  ) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    frames
        From :func:`report_frames`.
    gates
        The gate table (:data:`GATE_TABLE_COLUMNS`), e.g. from
        ``barberpro_ml.registry.champion_gate_table``; None when no registry was read.
    gates_note
        A sentence shown in the gate section (why no registry was read, say).
    forecast
        The forecast to show; None: the page says no forecast model was available.
    forecast_note
        Why there is no forecast (shown when ``forecast`` is None).
    title
        The page's title; the cut-off and the data's span are added below it.

    Returns
    -------
    str
        The HTML document.
    """
    name = f" &middot; data set {_esc(frames.data_name)}" if frames.data_name else ""
    subtitle = (f"As of {frames.as_of:%Y-%m-%d %H:%M} UTC &middot; event history "
                f"{frames.span_start:%Y-%m-%d} to {frames.span_end:%Y-%m-%d}{name} &middot; "
                f"{frames.customers:,} customers and {frames.bookings:,} bookings known at the "
                "cut-off")
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in frames.notes)
    sections = [
        ("kpis", "Headline measures", kpi_section(frames)),
        ("cohorts", "Retention by signup cohort", cohort_section(frames)),
        ("funnel", "Acquisition funnel", funnel_section(frames)),
        ("forecast", "Forecast", forecast_section_html(forecast, forecast_note)),
        ("gates", "Models and their accuracy gates", gate_section(gates, gates_note)),
    ]
    body = "".join(f'<section id="{sid}"><h2>{heading}</h2>{content}</section>'
                   for sid, heading, content in sections)
    charts = body.count('<img class="chart"')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_esc(title)} as of {frames.as_of:%Y-%m-%d}</title>"
        f"<style>{_STYLE}</style></head>"
        f'<body data-charts-expected="{charts}">'
        f"<h1>{_esc(title)}</h1><p class=\"subtitle\">{subtitle}</p>{notes}{body}"
        "<p class=\"footnote\">Generated by barberpro-ml. Every number is computed from the "
        "events known at the cut-off; intervals are 95% unless stated.</p>"
        f"<script>{_CHECK_SCRIPT}</script></body></html>\n")


def build_report(data: MarketplaceData, as_of: AsOf | None = None, *,
                 gates: pd.DataFrame | None = None, gates_note: str | None = None,
                 forecast: ForecastSection | None = None, forecast_note: str | None = None,
                 data_name: str | None = None,
                 definitions: Definitions = DEFAULT_DEFINITIONS) -> str:
    """:func:`report_frames` then :func:`render_report`: the HTML page for ``data`` at
    ``as_of`` (the parameters are theirs).

    Examples
    --------
    >>> page = build_report(data, "2024-12-31")                          # doctest: +SKIP
    >>> write_report(page, "report.html")                                # doctest: +SKIP
    """
    frames = report_frames(data, as_of, definitions=definitions, data_name=data_name)
    return render_report(frames, gates=gates, gates_note=gates_note, forecast=forecast,
                         forecast_note=forecast_note)


def check_report_path(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path that can never be written as a file, before any work."""
    out = Path(path)
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give the path of an HTML file, e.g. "
                         f"{out / 'report.html'}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"--out {out}: {parent} is a file, not a folder")
    return out


def write_report(page: str, path: str | os.PathLike[str]) -> Path:
    """Write the page beside ``path`` and move it into place (a reader never sees half a
    file; a failed write leaves nothing behind)."""
    out = check_report_path(path)
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(page, encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if partial.is_file():
            partial.unlink()
    return out
