"""The joints between packages, checked over the source: events by constant, jobs by callable, imports at
the top (or saying why not), and every topic declared and consumed. (The layer and blueprint contracts
are import-linter's, run by `make test` before pytest: see pyproject.toml.)"""
from __future__ import annotations

import ast
from pathlib import Path

from coach.platform import jobs
from coach.platform.events import TOPICS, Topic

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "coach").rglob("*.py"))
# The lazy entry point: every `import coach.x` runs coach/__init__.py, which must not build the web app.
LAZY_ENTRY = ROOT / "coach" / "__init__.py"


def _calls(tree: ast.AST, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                yield node


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def test_topics_are_emitted_and_consumed_by_their_constant_never_by_a_string():
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for call in _calls(tree, {"emit", "consumer"}):
            if any(_is_text(arg) for arg in call.args):
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert offenders == []


def test_jobs_are_enqueued_by_callable_never_by_a_dotted_string():
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for call in _calls(tree, {"enqueue", "enqueue_call", "enqueue_at", "enqueue_in", "prepare_data"}):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
            target = call.args[1] if name in ("enqueue_at", "enqueue_in") and len(call.args) > 1 else \
                (call.args[0] if call.args else None)
            if target is not None and _is_text(target):
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert offenders == []


def test_imports_of_our_modules_are_at_the_top_or_say_why():
    """An import inside a function hides a dependency (often one that points the wrong way); the few that
    remain carry a comment on the line or the line above saying why."""
    unexplained = []
    for path in SOURCES:
        if path == LAZY_ENTRY:
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                module = inner.module if isinstance(inner, ast.ImportFrom) else \
                    (inner.names[0].name if isinstance(inner, ast.Import) else None)
                if module is None or not (module == "coach" or module.startswith("coach.")):
                    continue
                here, above = lines[inner.lineno - 1], lines[inner.lineno - 2] if inner.lineno > 1 else ""
                if "#" not in here and not above.strip().startswith("#"):
                    unexplained.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {here.strip()}")
    assert sorted(set(unexplained)) == []


def test_every_declared_topic_has_a_consumer_and_every_consumer_listens_to_a_declared_topic(app):
    """An event nobody consumes is a dead letter in waiting; a consumer of an undeclared topic is never
    reached by its name's constant (the test suite's own topics aside)."""
    ours = {name: topic for name, topic in TOPICS.items() if not name.startswith(("test.", "bench."))}
    assert all(isinstance(topic, Topic) and topic.payload for topic in ours.values())
    unconsumed = sorted(name for name in ours if not jobs.consumers_of(name))
    assert unconsumed == []
    undeclared = sorted(name for name in jobs._CONSUMERS if name not in TOPICS)
    assert undeclared == []


def test_a_booking_confirmation_is_found_by_one_name(app):
    """"What happens when a booking is confirmed": the constant names the emitter's topic and its consumers."""
    from coach.booking.events import BOOKING_CONFIRMED, STATUS_TOPICS

    assert STATUS_TOPICS["confirmed"] is BOOKING_CONFIRMED
    consumers = {f"{func.__module__}.{func.__name__}" for func in jobs.consumers_of(BOOKING_CONFIRMED)}
    assert consumers == {"coach.booking.jobs.schedule_from_event", "coach.notifications.jobs.booking_changed",
                         "coach.calsync.push_jobs.booking_changed",
                         "coach.directory.projection_jobs.refresh_listing"}
