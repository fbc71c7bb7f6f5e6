"""Chart geometry: where the lines, bars and ticks of a small chart go, as plain numbers in SVG space (x to the
right, y down, in a ``width`` x ``height`` box). Pure functions, no Flask and no database: the Jinja macros of
``progress/_chart.html`` turn the result into inline SVG (classes only, so CSS colours it in light and dark) and
the PDF report draws the same shapes with fpdf2.

Every chart keeps its data as ``rows`` (label, value...) so the page can show a table equivalent of it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# Room for the y labels on the left and the x labels below the plot.
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 36.0, 8.0, 8.0, 22.0
MAX_X_TICKS = 7


@dataclass(frozen=True)
class Tick:
    pos: float  # x (for an x tick) or y (for a y tick) in the chart's box
    label: str


@dataclass(frozen=True)
class Plot:
    """The plot area inside the box (the axes' rectangle)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    on: date
    value: float


@dataclass(frozen=True)
class Band:
    """A horizontal band (``low`` .. ``high`` in data units; ``y_top``/``y_bottom`` in the box) or, when both are
    equal, a line."""

    low: float
    high: float
    y_top: float
    y_bottom: float

    @property
    def height(self) -> float:
        return self.y_bottom - self.y_top

    @property
    def is_line(self) -> bool:
        return self.low == self.high


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    plot: Plot
    points: list[Point]
    path: str  # "M x y L x y ..." with a new "M" after each gap; "" when there is nothing to draw
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    band: Band | None
    rows: list[tuple[date, float]]
    y_min: float
    y_max: float

    @property
    def empty(self) -> bool:
        return not self.points


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    negative: bool = False


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot: Plot
    bars: list[Bar]
    y_ticks: list[Tick]
    zero_y: float  # where the value 0 is (bars grow up or down from it)
    rows: list[tuple[str, float]]

    @property
    def empty(self) -> bool:
        return not self.bars


@dataclass(frozen=True)
class Segment:
    kind: str  # "done", "partial" or "missed"
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class WeekColumn:
    week_start: date
    label: str
    x: float
    width: float
    segments: list[Segment]
    scheduled: int
    label_x: float = 0.0


@dataclass(frozen=True)
class StackedChart:
    width: int
    height: int
    plot: Plot
    columns: list[WeekColumn]
    y_ticks: list[Tick]
    rows: list[tuple[date, int, int, int]]  # week_start, done, partial, missed
    kinds: tuple[str, ...] = field(default=("done", "partial", "missed"))

    @property
    def empty(self) -> bool:
        return not any(column.scheduled for column in self.columns)


# --- scales and ticks ---------------------------------------------------------------------------------------


def _r(value: float) -> float:
    """One decimal is plenty for a screen or a PDF, and keeps the SVG short."""
    return round(value, 1)


def nice_step(span: float, count: int) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` intervals over ``span``."""
    if span <= 0 or count < 1:
        return 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover (the loop always returns)


def format_number(value: float) -> str:
    """``3`` for 3.0, ``2.5`` for 2.5, ``-0.25``; never ``-0``."""
    if abs(value) < 1e-9:
        return "0"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


def _y_ticks(y_min: float, y_max: float, to_y, count: int = 4, whole: bool = False) -> list[Tick]:
    step = nice_step(y_max - y_min, count)
    if whole:  # counts: no tick at 2.5 sessions
        step = float(max(1, math.ceil(step)))
    first = math.ceil(y_min / step - 1e-9) * step
    ticks = []
    value = first
    while value <= y_max + 1e-9:
        ticks.append(Tick(_r(to_y(value)), format_number(value)))
        value += step
    return ticks


def _date_label(day: date, span_days: int) -> str:
    if span_days > 200:
        return day.strftime("%b %Y")
    return f"{day.day} {day.strftime('%b')}"


def _plot(width: int, height: int) -> Plot:
    return Plot(PAD_LEFT, PAD_TOP, width - PAD_RIGHT, height - PAD_BOTTOM)


def _range(values: Sequence[float], y_min: float | None, y_max: float | None) -> tuple[float, float]:
    low = min(values) if y_min is None and values else y_min
    high = max(values) if y_max is None and values else y_max
    low = 0.0 if low is None else float(low)
    high = 1.0 if high is None else float(high)
    if high < low:
        low, high = high, low
    if high == low:  # a flat series (or one point) still needs a range to sit in
        low, high = low - 1, high + 1
    return low, high


# --- charts -------------------------------------------------------------------------------------------------


def line(series: Sequence[tuple[date, float | None]], *, y_min: float | None = None, y_max: float | None = None,
         width: int = 600, height: int = 160, baseline: float | tuple[float, float] | None = None,
         start: date | None = None, end: date | None = None, max_gap_days: int | None = None) -> LineChart:
    """A line over dates.

    :param series: ``(day, value)`` pairs in any order; a ``None`` value is a gap (the line breaks there).
    :param y_min, y_max: the value range (a scale's 1..5); by default the data's own. Values outside are drawn
        at the edge; the table keeps the true value.
    :param baseline: a reference value (a line) or ``(low, high)`` (a band), e.g. the athlete's usual range.
    :param start, end: the days the x axis spans (a 28-day window with days missing); by default the data's.
    :param max_gap_days: break the line where two points are further apart than this many days (days without
        a check-in are not drawn as if the value had slid between them).
    """
    known = sorted((day, float(value)) for day, value in series if value is not None)
    gaps = {day for day, value in series if value is None}
    values = [value for _, value in known]
    band_values = [] if baseline is None else (
        [float(baseline)] if isinstance(baseline, (int, float)) else [float(v) for v in baseline])
    low, high = _range(values + band_values if (y_min is None or y_max is None) else values, y_min, y_max)
    plot = _plot(width, height)
    days = [day for day, _ in known] + sorted(gaps)
    first = start or (min(days) if days else None)
    last = end or (max(days) if days else None)
    span = (last - first).days if first and last else 0

    def to_x(day: date) -> float:
        if span <= 0:
            return plot.left + plot.width / 2
        return plot.left + (day - first).days / span * plot.width

    def to_y(value: float) -> float:
        value = min(max(value, low), high)
        return plot.bottom - (value - low) / (high - low) * plot.height

    points = [Point(_r(to_x(day)), _r(to_y(value)), day, value) for day, value in known
              if (first is None or day >= first) and (last is None or day <= last)]
    parts: list[str] = []
    previous: Point | None = None
    for point in points:
        broken = previous is None or any(previous.on < gap < point.on for gap in gaps) or (
            max_gap_days is not None and (point.on - previous.on).days > max_gap_days)
        parts.append(f"{'M' if broken else 'L'}{point.x} {point.y}")
        previous = point
    x_ticks: list[Tick] = []
    if first is not None:
        count = min(MAX_X_TICKS, span + 1)
        seen = set()
        for index in range(count):
            offset = 0 if count == 1 else round(index * span / (count - 1))
            day = date.fromordinal(first.toordinal() + offset)
            if day not in seen:
                seen.add(day)
                x_ticks.append(Tick(_r(to_x(day)), _date_label(day, span)))
    band = None
    if baseline is not None:
        b_low, b_high = (float(baseline), float(baseline)) if isinstance(baseline, (int, float)) else (
            float(min(baseline)), float(max(baseline)))
        band = Band(b_low, b_high, _r(to_y(b_high)), _r(to_y(b_low)))
    return LineChart(width, height, plot, points, " ".join(parts), x_ticks, _y_ticks(low, high, to_y), band,
                     [(point.on, point.value) for point in points], low, high)


def bars(series: Sequence[tuple[Any, float]], *, y_min: float | None = None, y_max: float | None = None,
         width: int = 600, height: int = 160, gap: float = 0.25) -> BarChart:
    """Bars side by side, in the given order, growing from zero (down for negative values).

    :param series: ``(label, value)`` pairs; a label that is a date shows as "6 Dec".
    :param gap: the share of each slot left empty between bars.
    """
    rows = [(_label(label), float(value)) for label, value in series]
    values = [value for _, value in rows]
    low = min([0.0, *values]) if y_min is None else min(float(y_min), 0.0)
    high = max([0.0, *values]) if y_max is None else max(float(y_max), 0.0)
    if high == low:
        high = low + 1
    plot = _plot(width, height)

    def to_y(value: float) -> float:
        value = min(max(value, low), high)
        return plot.bottom - (value - low) / (high - low) * plot.height

    zero = to_y(0.0)
    slot = plot.width / len(rows) if rows else 0.0
    bar_width = slot * (1 - gap)
    drawn = []
    for index, (label, value) in enumerate(rows):
        top, bottom = sorted((to_y(value), zero))
        drawn.append(Bar(_r(plot.left + index * slot + (slot - bar_width) / 2), _r(top), _r(bar_width),
                         _r(bottom - top), label, value, value < 0))
    return BarChart(width, height, plot, drawn, _y_ticks(low, high, to_y), _r(zero), rows)


def _label(label: Any) -> str:
    if isinstance(label, date):
        return f"{label.day} {label.strftime('%b')}"
    return str(label)


def _week(week: Any) -> tuple[date, int, int, int]:
    """A week as ``(week_start, done, partial, missed)`` from a tuple or anything with those attributes."""
    if isinstance(week, tuple):
        start, done, partial, missed = week[:4]
    else:
        start, done, partial, missed = week.week_start, week.done, week.partial, week.missed
    return start, int(done or 0), int(partial or 0), int(missed or 0)


def stacked_weeks(weeks: Sequence[Any], *, width: int = 600, height: int = 160, gap: float = 0.3) -> StackedChart:
    """Program compliance per week: one column per week, ``done`` at the bottom, then ``partial``, then
    ``missed``, scaled so the busiest week fills the height.

    :param weeks: oldest first; tuples ``(week_start, done, partial, missed)`` or objects with those attributes
        (``programs.WeekCompliance``).
    """
    rows = [_week(week) for week in weeks]
    most = max([done + partial + missed for _, done, partial, missed in rows] + [0])
    high = float(max(most, 1))
    plot = _plot(width, height)

    def to_y(value: float) -> float:
        return plot.bottom - value / high * plot.height

    slot = plot.width / len(rows) if rows else 0.0
    column_width = slot * (1 - gap)
    columns = []
    for index, (start, done, partial, missed) in enumerate(rows):
        x = plot.left + index * slot + (slot - column_width) / 2
        segments, below = [], 0
        for kind, count in (("done", done), ("partial", partial), ("missed", missed)):
            if count:
                top, bottom = to_y(below + count), to_y(below)
                segments.append(Segment(kind, _r(top), _r(bottom - top), count))
                below += count
        columns.append(WeekColumn(start, _label(start), _r(x), _r(column_width), segments, below,
                                  _r(x + column_width / 2)))
    step_ticks = _y_ticks(0.0, high, to_y, count=min(4, int(high)), whole=True)
    return StackedChart(width, height, plot, columns, step_ticks, rows)
