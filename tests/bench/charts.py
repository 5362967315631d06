"""The charts of BENCHMARKS.md, as Mermaid xychart blocks in the report itself: a reader sees the gap
between envoyd and the floor (and the design we grew from) where the report is shown, and no image
is generated or kept."""

from __future__ import annotations

from tests.support.stats import median, percentile


def _chart(title: str, x_label: str, categories: list[str], y_label: str, series: list[tuple[str, list[float]]],
           legend: str) -> list[str]:
    top = max((max(values) for _kind, values in series if values), default=1.0)
    lines = ["", legend, "", "```mermaid", "xychart-beta", f'    title "{title}"',
             f'    x-axis "{x_label}" [' + ", ".join(f'"{c}"' for c in categories) + "]",
             f'    y-axis "{y_label}" 0 --> {top * 1.1:.1f}']
    for kind, values in series:
        lines.append(f"    {kind} [" + ", ".join(f"{v:.1f}" for v in values) + "]")
    return lines + ["```"]


def section(results: dict) -> list[str]:
    lines = ["", "## Charts", "", "Drawn from this run's numbers (Mermaid; shown where Markdown renders it)."]
    propagation = results["propagation"]
    labels = [r["mode"] for r in propagation]
    ours = [median(r["samples"]) * 1000 for r in propagation]
    floor = [median(r["floor_samples"]) * 1000 for r in propagation]
    ours99 = [percentile(r["samples"], 99) * 1000 for r in propagation]
    for seed in results.get("seed", []):
        labels.append("restart per index")
        ours.append(median(seed["samples"]) * 1000)
        ours99.append(percentile(seed["samples"], 99) * 1000)
        floor.append(median(seed["floor_samples"]) * 1000)
    lines += _chart("Propagation under load (ms)", "mode", labels, "ms", [("bar", ours99), ("bar", ours),
                                                                            ("line", floor)],
                    "Bars: envoyd's p99 and p50 by mode (the last: the design we grew from); line: the floor's p50 "
                    "in the same run.")
    for r in results["scale"]:
        rows = r["rows"]
        lines += _chart(f"Assignment size, {r['mode']} (ms, median)", "cores", [f"{row['cores']:,}" for row in rows],
                        "ms", [("bar", [median(row["samples"]) * 1000 for row in rows]),
                               ("line", [median(row["floor_samples"]) * 1000 for row in rows])],
                        f"Bars: envoyd ({r['mode']}), KV write to every core in Envoy, median; line: the floor beside "
                        "it; 100 ms is the target at 10,000 cores.")
    return lines
