"""The harness's outputs: the stdout table, the generations file and the alpha plot."""

from __future__ import annotations

import json
from pathlib import Path

from .harness import RunResult


def format_table(results: list[RunResult]) -> str:
    header = ("task", "mode", "alpha", "accuracy", "95%_CI", "correct", "n", "mean_nfe", "errors")
    rows = [header]
    for res in results:
        s = res.summary()
        nfe = "-" if s["mean_nfe"] is None else f"{s['mean_nfe']:.1f}"
        low, high = s["ci95"]
        rows.append((res.task, res.run.mode, res.run.alpha_key, f"{100 * s['accuracy']:.2f}%",
                     f"[{100 * low:.1f},{100 * high:.1f}]", str(s["correct"]), str(s["n"]), nfe, str(s["errors"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_generations(results: list[RunResult], out_dir: Path) -> Path:
    """Every answer, one JSON line each, in the order tasks, runs and items were evaluated."""
    path = out_dir / "generations.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for res in results:
            for record in res.records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def plot_accuracy(results: list[RunResult], out_dir: Path) -> Path:
    """Accuracy against alpha, one line per mode and one panel per task. hard_mask has no
    alpha, so it is drawn as a horizontal reference line across the swept range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(res.task for res in results))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    alphas = sorted({res.run.alpha for res in results if res.run.alpha is not None}) or [0.0, 1.0]
    span = (min(alphas), max(alphas)) if len(alphas) > 1 else (alphas[0] - 0.05, alphas[0] + 0.05)
    for ax, task in zip(axes[0], tasks):
        for mode in dict.fromkeys(res.run.mode for res in results if res.task == task):
            mine = sorted((res for res in results if res.task == task and res.run.mode == mode),
                          key=lambda r: r.run.alpha or 0.0)
            if mine[0].run.alpha is None:
                ax.plot(span, [100 * mine[0].accuracy] * 2, linestyle="--", label=mode)
            else:
                ax.plot([r.run.alpha for r in mine], [100 * r.accuracy for r in mine], marker="o", label=mode)
        ax.set_title(f"{task} (n={max(r.n for r in results if r.task == task)})")
        ax.set_xlabel("alpha_soft_mask")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out_dir / "accuracy_vs_alpha.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
