"""The simulation's report: typed (`model`), gathered from the run (`collect`), rendered (`render`)."""

from domicile_local.sim.report.collect import build_report
from domicile_local.sim.report.model import Report
from domicile_local.sim.report.render import markdown, print_summary, write_report

__all__ = ["Report", "build_report", "markdown", "print_summary", "write_report"]
