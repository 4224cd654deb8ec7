"""Reports on search runs: the run folder read without torch (``run``), plots of the
alphas and the training curves (``plots``, needs matplotlib) and one self-contained
HTML page (``html``)."""

from genolang.report.run import SearchRun, load_run

__all__ = ["SearchRun", "load_run"]
