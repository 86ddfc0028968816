"""The bench's PNG: throughput against concurrency, and where a step's time goes."""

from __future__ import annotations


def plot_bench(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in sorted({r["name"] for r in report["rows"]}):
        rows = sorted((r for r in report["rows"] if r["name"] == name), key=lambda r: r["concurrency"])
        left.plot([r["concurrency"] for r in rows], [r["tok_s"] for r in rows], marker="o", label=name)
    left.set_xscale("log", base=2)
    left.set_xlabel("requests in flight")
    left.set_ylabel("answer tokens / s")
    left.set_title("throughput")
    left.legend()
    engine = [r for r in report["rows"] if r["name"] == "engine" and r.get("ms_per_step")]
    labels = [str(r["concurrency"]) for r in engine]
    forward = [r["ms_per_step"] * (1 - r["decode_share"]) for r in engine]
    decode = [r["ms_per_step"] * r["decode_share"] for r in engine]
    right.bar(labels, forward, label="model forward")
    right.bar(labels, decode, bottom=forward, label="decoding rules")
    right.set_xlabel("rows per step")
    right.set_ylabel("ms per step")
    right.set_title("step time")
    right.legend()
    fig.suptitle(f"{report['model']} on {report['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
