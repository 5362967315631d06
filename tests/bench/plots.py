"""The plots of BENCHMARKS.md (matplotlib, PNG): the propagation latency distributions of envoyd and
the floor in both modes, and the scale curve (cores against time to apply). Written beside the report;
generated images, so git ignores them."""

from __future__ import annotations

from pathlib import Path

from tests.support.stats import median

PROPAGATION = "BENCHMARKS-propagation.png"
SCALE = "BENCHMARKS-scale.png"


def _cdf(axes, samples, label, style, color):
    values = sorted(s * 1000 for s in samples)
    if values:
        axes.step(values, [(i + 1) / len(values) for i in range(len(values))], style, where="post", label=label,
                  color=color)


def _finish(pyplot, figure, axes, path, xlabel, ylabel, title):
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def write(directory: Path, results: dict) -> list[tuple[str, str]]:
    """Write the plots into directory; [(title, file name)]."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    written = []
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for r, color in zip(results["propagation"], ("tab:blue", "tab:orange")):
        _cdf(axes, r["samples"], f"envoyd, {r['mode']}", "-", color)
        _cdf(axes, r["floor_samples"], f"floor, beside {r['mode']}", "--", color)
    _finish(pyplot, figure, axes, directory / PROPAGATION, "KV write to a call answered by a new core (ms, log)",
            "fraction of changes", "Propagation under load: envoyd and the floor")
    written.append(("Propagation latency, envoyd and the floor, both modes", PROPAGATION))

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for r, color in zip(results["scale"], ("tab:green", "tab:red")):
        sizes = [row["cores"] for row in r["rows"]]
        axes.plot(sizes, [median(row["samples"]) * 1000 for row in r["rows"]], "o-", color=color,
                  label=f"envoyd, validation {r['validation']}")
        axes.plot(sizes, [median(row["floor_samples"]) * 1000 for row in r["rows"]], "x--", color=color,
                  label=f"floor, beside validation {r['validation']}")
    axes.axhline(300, color="grey", linestyle=":", label="target at 10,000 cores (300 ms)")
    axes.set_yscale("log")
    _finish(pyplot, figure, axes, directory / SCALE, "cores in the assignment (log)",
            "median KV write to every core in Envoy (ms, log)", "Assignment size")
    written.append(("Scale curve: cores against time to apply", SCALE))
    return written
