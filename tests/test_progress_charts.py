"""Chart geometry (``coach.progress.charts``): pure functions, no app or database."""
from __future__ import annotations

from datetime import date, timedelta

from coach.progress import charts

D0 = date(2026, 11, 1)


def _days(values):
    return [(D0 + timedelta(days=i), v) for i, v in enumerate(values)]


def test_line_scales_values_into_the_plot_box():
    chart = charts.line(_days([1, 3, 5]), y_min=1, y_max=5, width=600, height=160)
    plot = chart.plot
    first, middle, last = chart.points
    assert (first.x, first.y) == (plot.left, plot.bottom)  # lowest value, first day: bottom left
    assert (last.x, last.y) == (plot.right, plot.top)  # highest value, last day: top right
    assert middle.x == round((plot.left + plot.right) / 2, 1)
    assert middle.y == round((plot.top + plot.bottom) / 2, 1)
    assert chart.path == f"M{first.x} {first.y} L{middle.x} {middle.y} L{last.x} {last.y}"
    assert chart.rows == [(D0, 1.0), (D0 + timedelta(days=1), 3.0), (D0 + timedelta(days=2), 5.0)]


def test_line_y_ticks_are_round_and_inside_the_range():
    chart = charts.line(_days([1, 5]), y_min=1, y_max=5)
    labels = [tick.label for tick in chart.y_ticks]
    assert labels == ["1", "2", "3", "4", "5"]
    assert all(chart.plot.top <= tick.pos <= chart.plot.bottom for tick in chart.y_ticks)


def test_line_sorts_series_and_labels_dates():
    series = list(reversed(_days([2, 4, 3])))
    chart = charts.line(series, y_min=0, y_max=5)
    assert [point.on for point in chart.points] == [D0, D0 + timedelta(days=1), D0 + timedelta(days=2)]
    assert chart.x_ticks[0].label == "1 Nov"
    assert chart.x_ticks[-1].label == "3 Nov"


def test_line_of_nothing_is_empty_and_draws_nothing():
    chart = charts.line([], y_min=1, y_max=5)
    assert chart.empty
    assert chart.path == ""
    assert chart.points == [] and chart.rows == [] and chart.x_ticks == []
    assert [tick.label for tick in chart.y_ticks][0] == "1"  # the axis still reads


def test_one_point_sits_in_the_middle_and_is_a_dot():
    chart = charts.line([(D0, 3.0)], y_min=1, y_max=5)
    (point,) = chart.points
    assert point.x == round((chart.plot.left + chart.plot.right) / 2, 1)
    assert chart.path == f"M{point.x} {point.y}"
    assert [tick.label for tick in chart.x_ticks] == ["1 Nov"]


def test_one_point_without_a_range_gets_one_around_it():
    chart = charts.line([(D0, 7.0)])
    assert (chart.y_min, chart.y_max) == (6.0, 8.0)
    assert chart.points[0].y == round((chart.plot.top + chart.plot.bottom) / 2, 1)


def test_none_values_break_the_line():
    chart = charts.line(_days([1, 2, None, 4, 5]), y_min=0, y_max=5)
    assert len(chart.points) == 4
    assert chart.path.count("M") == 2
    assert chart.rows == [(D0, 1.0), (D0 + timedelta(days=1), 2.0), (D0 + timedelta(days=3), 4.0),
                          (D0 + timedelta(days=4), 5.0)]


def test_missing_days_break_the_line_when_asked():
    series = [(D0, 3.0), (D0 + timedelta(days=1), 3.5), (D0 + timedelta(days=5), 4.0)]
    assert charts.line(series, y_min=1, y_max=5).path.count("M") == 1
    assert charts.line(series, y_min=1, y_max=5, max_gap_days=1).path.count("M") == 2


def test_a_fixed_window_places_days_by_date_not_by_index():
    start, end = D0, D0 + timedelta(days=27)
    chart = charts.line([(D0 + timedelta(days=27), 4.0)], y_min=1, y_max=5, start=start, end=end)
    assert chart.points[0].x == chart.plot.right
    assert chart.x_ticks[0].pos == chart.plot.left and chart.x_ticks[0].label == "1 Nov"


def test_values_outside_the_range_are_drawn_at_the_edge_but_kept_in_the_table():
    chart = charts.line(_days([9.0, -3.0]), y_min=1, y_max=5)
    assert chart.points[0].y == chart.plot.top
    assert chart.points[1].y == chart.plot.bottom
    assert [value for _, value in chart.rows] == [9.0, -3.0]


def test_negative_ranges_scale_and_label():
    chart = charts.line(_days([-10, 0, 10]))
    assert (chart.y_min, chart.y_max) == (-10, 10)
    zero = chart.points[1]
    assert zero.y == round((chart.plot.top + chart.plot.bottom) / 2, 1)
    labels = [tick.label for tick in chart.y_ticks]
    assert "-10" in labels and "0" in labels and "10" in labels and "-0" not in labels


def test_baseline_band_and_line():
    chart = charts.line(_days([3, 4]), y_min=1, y_max=5, baseline=(3.0, 4.0))
    band = chart.band
    assert (band.low, band.high) == (3.0, 4.0) and not band.is_line
    assert band.y_top == chart.points[1].y and band.y_bottom == chart.points[0].y
    assert band.height > 0
    flat = charts.line(_days([3, 4]), y_min=1, y_max=5, baseline=3.5).band
    assert flat.is_line and flat.height == 0


def test_baseline_widens_an_automatic_range():
    chart = charts.line(_days([3, 4]), baseline=(1.0, 2.0))
    assert chart.y_min == 1.0
    assert chart.band.y_bottom == chart.plot.bottom


def test_long_spans_label_months():
    chart = charts.line([(date(2025, 1, 1), 1.0), (date(2026, 12, 1), 2.0)])
    assert chart.x_ticks[0].label == "Jan 2025"
    assert len(chart.x_ticks) == charts.MAX_X_TICKS


def test_bars_grow_from_zero_up_and_down():
    chart = charts.bars([("a", 4), ("b", -2), ("c", 0)])
    up, down, flat = chart.bars
    assert up.y + up.height == chart.zero_y and not up.negative
    assert down.y == chart.zero_y and down.negative and down.height > 0
    assert flat.height == 0
    assert abs(up.height - 2 * down.height) <= 0.2
    assert up.x < down.x < flat.x
    assert chart.rows == [("a", 4.0), ("b", -2.0), ("c", 0.0)]


def test_bars_with_date_labels_and_no_data():
    chart = charts.bars([(D0, 1)])
    assert chart.bars[0].label == "1 Nov"
    empty = charts.bars([])
    assert empty.empty and empty.bars == []


def test_stacked_weeks_stack_done_partial_missed():
    weeks = [(D0, 3, 1, 1), (D0 + timedelta(days=7), 0, 0, 0), (D0 + timedelta(days=14), 2, 0, 0)]
    chart = charts.stacked_weeks(weeks)
    busiest, quiet, light = chart.columns
    assert [segment.kind for segment in busiest.segments] == ["done", "partial", "missed"]
    done, partial, missed = busiest.segments
    assert done.y + done.height == chart.plot.bottom  # done sits on the axis
    assert missed.y == chart.plot.top  # the busiest week fills the height
    assert abs(done.y - (partial.y + partial.height)) < 0.2  # stacked without gaps
    assert quiet.segments == [] and quiet.scheduled == 0
    assert light.segments[0].height < done.height
    assert all(float(tick.label).is_integer() for tick in chart.y_ticks)
    assert chart.rows[0] == (D0, 3, 1, 1)


def test_stacked_weeks_read_objects_with_attributes():
    class Week:
        week_start, done, partial, missed = D0, 1, 0, 2

    chart = charts.stacked_weeks([Week()])
    assert chart.columns[0].scheduled == 3 and chart.columns[0].label == "1 Nov"


def test_stacked_weeks_without_anything_scheduled_are_empty():
    chart = charts.stacked_weeks([(D0, 0, 0, 0)])
    assert chart.empty
    assert charts.stacked_weeks([]).empty


def test_nice_steps():
    assert charts.nice_step(4, 4) == 1
    assert charts.nice_step(100, 4) == 25
    assert charts.nice_step(0.9, 4) == 0.25
    assert charts.format_number(2.50) == "2.5" and charts.format_number(-0.0) == "0"
