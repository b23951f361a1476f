"""Management reports over the call archive: figures, tables, CSV/JSON and charts."""

from ari_app.reports.compute import Period, Query, Report, compute

__all__ = ["Period", "Query", "Report", "compute"]
