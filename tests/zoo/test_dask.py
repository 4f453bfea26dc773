"""The same sweep on a Dask cluster (two worker processes, started here): the same rows as the local pool."""

from __future__ import annotations

import pytest

from tests.zoo.conftest import MEMORY_LIMIT, TIME_LIMIT, Sweep, lines, spec
from torchscan import zoo


def test_a_dask_cluster_gives_the_local_rows(sweep: Sweep) -> None:
    distributed = pytest.importorskip("dask.distributed")
    names = ["value_branch", "segfault"]
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        rows = zoo.run(lines(names), executor=client.get_executor(), time_limit=TIME_LIMIT, memory_limit=MEMORY_LIMIT)
        workers = client.run(lambda: __import__("os").getpid())
    assert len(workers) == 2
    assert rows == [row for row in sweep.rows if row.spec in {spec(name) for name in names}]
    assert rows[-1].error_type == "Crash"  # the segfault killed its worker process only
