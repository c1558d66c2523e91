"""Run reports: the figures of one batch run as JSON and as a self-contained HTML page."""

from mdm.report.build import build_report, load_report, report_paths, summary_lines, write_report

__all__ = ["build_report", "load_report", "report_paths", "summary_lines", "write_report"]
