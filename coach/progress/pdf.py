"""The progress report as a PDF (fpdf2, its core fonts): the same sections as the HTML page, and its charts drawn
with fpdf2's lines and rectangles from the same geometry (:mod:`coach.progress.charts`).

The core fonts draw Windows-1252. Other text is first folded to its closest Latin letters ("Łukasz" → "Lukasz",
"Zoë" stays) and what remains becomes "?", so no name can make the PDF fail.
"""
from __future__ import annotations

import unicodedata

from fpdf import FPDF

from coach.progress import charts

ENCODING = "windows-1252"
MARGIN = 18
INK, MUTED, ACCENT = (29, 36, 51), (107, 114, 128), (31, 111, 92)
KIND_COLOURS = {"done": (31, 111, 92), "partial": (214, 158, 46), "missed": (200, 80, 80)}
BAND = (220, 236, 231)
GRID = (225, 228, 232)
# Letters NFKD does not take apart.
_FOLD = str.maketrans({"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "ß": "ss", "Æ": "AE", "æ": "ae",
                       "Œ": "OE", "œ": "oe", "Þ": "Th", "þ": "th", "ı": "i", "–": "-", "—": "-", "…": "...",
                       "·": "-", "→": "->", "≥": ">=", "≤": "<="})


def text(value) -> str:
    """``value`` as the core fonts can draw it."""
    value = str(value)
    try:
        value.encode(ENCODING)
        return value
    except UnicodeEncodeError:
        pass
    out = []
    for ch in value.translate(_FOLD):
        try:
            ch.encode(ENCODING)
            out.append(ch)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            try:
                base.encode(ENCODING)
                out.append(base or "?")
            except UnicodeEncodeError:
                out.append("?")
    return "".join(out)


class _Doc(FPDF):
    footer_text = ""

    def footer(self):
        self.set_y(-12)
        self.set_font("helvetica", size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, text(f"{self.footer_text} - page {self.page_no()}/{{nb}}"), align="C")


def render(data, drawn) -> bytes:
    """The report (``reports.ReportData`` and its ``reports.ReportCharts``) as an A4 PDF."""
    pdf = _Doc(format="A4")
    pdf.core_fonts_encoding = ENCODING
    pdf.set_compression(True)
    pdf.footer_text = f"{data.org_name} - {data.athlete_name} - {data.period_label}"
    pdf.set_title(text(data.title))
    pdf.set_author(text(data.org_name))
    pdf.set_creator("Coach")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    width = pdf.w - 2 * MARGIN

    def write(value, size=10, style="", colour=INK, h=5.5):
        pdf.set_font("helvetica", style=style, size=size)
        pdf.set_text_color(*colour)
        pdf.multi_cell(width, h, text(value), new_x="LMARGIN", new_y="NEXT")

    def heading(value):
        if pdf.get_y() > pdf.h - 60:
            pdf.add_page()
        pdf.ln(4)
        write(value, 13, "B", ACCENT, 7)
        pdf.set_draw_color(*GRID)
        pdf.line(MARGIN, pdf.get_y(), MARGIN + width, pdf.get_y())
        pdf.ln(2)

    def row(cells, widths, style="", colour=INK):
        pdf.set_font("helvetica", style=style, size=9)
        pdf.set_text_color(*colour)
        for value, w in zip(cells, widths):
            pdf.cell(w, 5.5, text(value)[:90], new_x="RIGHT", new_y="TOP")
        pdf.ln(5.5)

    write(data.org_name, 10, "", MUTED)
    write(data.title, 18, "B", INK, 9)
    write(f"{'Weekly report, ' if data.kind == 'weekly' else ''}{data.period_label}", 11, "", MUTED)
    pdf.ln(2)
    summary = [f"Sessions: {data.session_count}", f"Skills changed: {len(data.changes)}",
               f"Goals: {len(data.goals)}"]
    if data.compliance_percent is not None:
        summary.append(f"Program compliance: {data.compliance_percent} %")
    if data.readiness_average is not None:
        summary.append(f"Average readiness: {data.readiness_average:.1f} / 5")
    write("   |   ".join(summary), 10, "B")

    heading("Sessions")
    if not data.sessions:
        write("No sessions in this period.", colour=MUTED)
    else:
        widths = (width * 0.28, width * 0.42, width * 0.3)
        row(("When", "Session", "Coach"), widths, "B", MUTED)
        for session in data.sessions:
            when = session.starts_at
            row((f"{when:%a} {when.day} {when:%b %Y}", session.title, session.coach), widths)
        if data.session_count > len(data.sessions):
            write(f"... and {data.session_count - len(data.sessions)} earlier sessions.", 9, "", MUTED)

    heading("Skills")
    if not data.changes:
        write("No skill levels changed in this period.", colour=MUTED)
    else:
        widths = (width * 0.4, width * 0.25, width * 0.35)
        row(("Skill", "Framework", "Level"), widths, "B", MUTED)
        for change in data.changes:
            before = "new" if change.old_level is None else f"{change.old_level} ->"
            row((change.skill_title, change.framework_title, f"{before} {change.label}"), widths)

    heading("Goals")
    if not data.goals:
        write("No goals yet.", colour=MUTED)
    else:
        widths = (width * 0.42, width * 0.18, width * 0.14, width * 0.13, width * 0.13)
        row(("Goal", "Status", "Progress", "Latest", "Milestones"), widths, "B", MUTED)
        for goal in data.goals:
            row((goal.title, goal.status_label, "" if goal.progress_percent is None else f"{goal.progress_percent} %",
                 goal.latest_value, f"{goal.milestones_done}/{goal.milestones_total}" if goal.milestones_total
                 else ""), widths)

    heading("Program compliance")
    if drawn.compliance is None:
        write("No program workouts were scheduled in this period.", colour=MUTED)
    else:
        _stacked(pdf, drawn.compliance, MARGIN, width)
        write("Per week: done (green), partly done (amber), missed (red).", 8, "", MUTED)

    heading("Readiness")
    if drawn.readiness is None:
        write("No readiness check-ins in this period.", colour=MUTED)
    else:
        _line(pdf, drawn.readiness, MARGIN, width)
        weekly = (data.period_end - data.period_start).days > 92
        write(f"Readiness score 1-5{', weekly average' if weekly else ', per day'}.", 8, "", MUTED)
    pdf.ln(4)
    write(f"Made on {data.generated_on.day} {data.generated_on:%b %Y} by Coach.", 8, "", MUTED)
    return bytes(pdf.output())


def _box(pdf: FPDF, chart, left: float, width: float):
    """Where the chart's SVG box goes on the page (a scale, and the top-left corner), adding a page if needed."""
    scale = width / chart.width
    height = chart.height * scale
    if pdf.get_y() + height > pdf.h - 22:
        pdf.add_page()
    return scale, left, pdf.get_y()


def _below(pdf: FPDF, chart, scale: float, left: float, top: float) -> None:
    """Back to the left margin under the chart (its labels moved the cursor)."""
    pdf.set_xy(left, top + chart.height * scale + 1)


def _axes(pdf: FPDF, chart, scale: float, left: float, top: float) -> None:
    plot = chart.plot
    pdf.set_draw_color(*GRID)
    pdf.set_line_width(0.2)
    pdf.set_font("helvetica", size=6.5)
    pdf.set_text_color(*MUTED)
    for tick in chart.y_ticks:
        y = top + tick.pos * scale
        pdf.line(left + plot.left * scale, y, left + plot.right * scale, y)
        pdf.set_xy(left, y - 2)
        pdf.cell(plot.left * scale - 1.5, 4, text(tick.label), align="R")


def _line(pdf: FPDF, chart: charts.LineChart, left: float, width: float) -> None:
    scale, left, top = _box(pdf, chart, left, width)
    plot = chart.plot
    if chart.band is not None and not chart.band.is_line:
        pdf.set_fill_color(*BAND)
        pdf.rect(left + plot.left * scale, top + chart.band.y_top * scale, plot.width * scale,
                 chart.band.height * scale, style="F")
    _axes(pdf, chart, scale, left, top)
    for tick in chart.x_ticks:
        pdf.set_xy(left + tick.pos * scale - 10, top + (plot.bottom + 3) * scale)
        pdf.cell(20, 4, text(tick.label), align="C")
    pdf.set_draw_color(*ACCENT)
    pdf.set_line_width(0.5)
    for token in _segments(chart.path):
        segment = [(left + x * scale, top + y * scale) for x, y in token]
        if len(segment) > 1:
            pdf.polyline(segment)
        elif segment:
            x, y = segment[0]
            pdf.set_fill_color(*ACCENT)
            pdf.circle(x, y, 0.7, style="F")
    pdf.set_line_width(0.2)
    _below(pdf, chart, scale, left, top)


def _segments(path: str) -> list[list[tuple[float, float]]]:
    """The polylines of an SVG path made of ``M x y`` and ``L x y`` commands."""
    found: list[list[tuple[float, float]]] = []
    for command in path.replace("M", "\nM").replace("L", "\nL").split("\n"):
        command = command.strip()
        if not command:
            continue
        x, y = (float(v) for v in command[1:].split())
        if command[0] == "M" or not found:
            found.append([(x, y)])
        else:
            found[-1].append((x, y))
    return found


def _stacked(pdf: FPDF, chart: charts.StackedChart, left: float, width: float) -> None:
    scale, left, top = _box(pdf, chart, left, width)
    _axes(pdf, chart, scale, left, top)
    every = max(1, len(chart.columns) // 8)
    for index, column in enumerate(chart.columns):
        for segment in column.segments:
            pdf.set_fill_color(*KIND_COLOURS[segment.kind])
            pdf.rect(left + column.x * scale, top + segment.y * scale, column.width * scale,
                     max(segment.height * scale, 0.1), style="F")
        if index % every == 0:
            pdf.set_xy(left + column.label_x * scale - 10, top + (chart.plot.bottom + 3) * scale)
            pdf.cell(20, 4, text(column.label), align="C")
    _below(pdf, chart, scale, left, top)
