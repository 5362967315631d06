"""BENCHMARKS.md's charts: Mermaid xychart blocks drawn from a run's numbers."""

from tests.bench.charts import section


def run(samples, floor):
    return {"samples": samples, "floor_samples": floor}


def test_the_charts_carry_the_runs_medians_and_p99():
    results = {
        "propagation": [dict(run([0.010, 0.020, 0.030], [0.010, 0.010, 0.010]), mode="dynamic")],
        "seed": [dict(run([0.200, 0.300, 0.400], [0.020, 0.020, 0.020]), mode="seed")],
        "scale": [{"mode": "xds", "rows": [dict(run([0.005], [0.004]), cores=10),
                                           dict(run([0.150], [0.120]), cores=10000)]}],
    }
    text = "\n".join(section(results))
    assert text.count("```mermaid\nxychart-beta") == 2
    assert 'x-axis "mode" ["dynamic", "restart per index"]' in text
    assert "    bar [30.0, 400.0]" in text  # p99 of each (the slowest of three)
    assert "    bar [20.0, 300.0]" in text  # medians
    assert "    line [10.0, 20.0]" in text  # the floor beside each
    assert 'x-axis "cores" ["10", "10,000"]' in text
    assert "    bar [5.0, 150.0]" in text and "    line [4.0, 120.0]" in text
    assert 'y-axis "ms" 0 --> 440.0' in text
