"""``run_search``: the library entry point of ``genolang search``. It joins the process
group and picks the device once, names the run folder, loads the specs and recipe
(``search.state``), sets the thread count and runs the driver for the space's kind; an
interrupted or diverged run is marked in ``run.json``.

The library never prints: it reports through a ``progress`` callback."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from genolang.errors import UsageError
from genolang.fsio import check_destination, check_folder
from genolang.run import dist
from genolang.run.diverged import Diverged
from genolang.run.folder import RUN_JSON, unused
from genolang.run.progress import ProgressFn
from genolang.search.recipe import SearchConfig, default_threads
from genolang.search.state import SearchResult, SearchRun, now


def default_run_dir() -> Path:
    """``runs/search-<UTC timestamp>`` under the current folder (``-2``, ``-3`` ... added
    when a run started in the same second)."""
    return unused(Path("runs") / f"search-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}")


def run_search(config: SearchConfig, *, run_dir: str | Path | None = None, out: str | Path | None = None,
               resume: bool = False, progress: ProgressFn | None = None,
               replace_out: bool = False) -> SearchResult:
    """Search ``config.space`` and write the found genotype to ``out`` (and to
    ``run_dir/genotype.geno``). With ``resume``, continue the run in ``run_dir`` from its
    last checkpoint; the result is bit-identical to an uninterrupted run on the CPU.
    ``out`` must be writable and, unless ``replace_out``, not exist: both are checked
    before the search starts; if it cannot be written at the end, the result says so
    (``SearchResult.out_error``) and the genotype is in the run folder."""
    if resume and run_dir is None:
        raise UsageError("--resume needs --run-dir: the folder of the search to continue")
    if out is not None:
        check_destination(out, replace=replace_out, flag="--force")
    if run_dir is not None:
        check_folder(run_dir)
    world, device = dist.join(config.device)
    try:
        # every rank uses rank 0's folder: the time in its name may differ across ranks
        path = Path(run_dir) if run_dir is not None else Path(str(dist.broadcast_object(str(default_run_dir()), world)))
        search = SearchRun(config, path, resume, progress, world, device, replace_out=replace_out)
        if search.kind == "rnn" and config.supernet is not None:
            raise UsageError(f"--passes and --no-opt optimize CNN supernets; space {search.space.name} is recurrent")
        threads = default_threads(config, search.recipe.dataset)
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, not {threads}")
        before = torch.get_num_threads()
        if threads is not None and device.type == "cpu":
            torch.set_num_threads(threads)
        try:
            return _drive(search, Path(out) if out is not None else None)
        finally:
            torch.set_num_threads(before)
    finally:
        dist.shutdown()


def _drive(search: SearchRun, out: Path | None) -> SearchResult:
    from genolang.search.images import search_images
    from genolang.search.text import search_text

    try:
        return search_text(search, out) if search.kind == "rnn" else search_images(search, out)
    except Diverged as err:
        search.write_run_json(status="diverged", error=str(err), finished=now())
        raise
    except KeyboardInterrupt:
        if (search.run.path / RUN_JSON).is_file():
            search.write_run_json(status="interrupted", finished=now())
        raise
