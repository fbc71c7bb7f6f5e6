"""Athlete development: skill frameworks and session records, proficiency, goals, habits and readiness check-ins,
training programs and their logs, coach notes, one timeline per athlete, charts, and progress reports."""
