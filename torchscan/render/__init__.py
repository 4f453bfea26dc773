"""Text and file renderings of a report (functions of the report; only summary() prints)."""
