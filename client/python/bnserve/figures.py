"""The book's BatchNorm figures (section 6.3.2), drawn from a server's jobs.

    python3 -m bnserve.figures --server 127.0.0.1:50051 --out figures/

Trains, through the server, the book's experiment: 784-100x5-10 ReLU networks
with and without BatchNorm, SGD lr 0.01, batch 100, on the first 1,000
mnist-digits training images for 20 epochs, at a weight init std; then draws
the training accuracy per epoch that the jobs stored (nothing is trained
locally):

  batchnorm_std_0.05.png   BN vs plain at W std 0.05 (the book's Figure 6-18)
  batchnorm_std_1.png      the same at std 1.0
  batchnorm_std_0.0001.png the same at std 1e-4
  weight_scale_grid.png    16 panels, std = logspace(0, -4, 16) (Figure 6-19)

A job whose description says it is the same experiment and that ran all
its epochs is reused (--retrain submits new ones), so a second run only
draws. A plain network at a large scale can diverge (its weights go NaN in
float32); the server then refuses to register it and the job FAILS after its
last epoch, but its per-epoch metrics are stored and drawn, marked
"(diverged)".
"""
import argparse
import os
import sys
from typing import Dict, List, Tuple

import numpy as np

from bnserve.client import Client, Job

# Pixel sizes of the figures (figsize in inches x DPI).
DPI = 100
SINGLE_SIZE = (6.4, 4.8)
GRID_SIZE = (12.0, 12.0)


def sweep_scales() -> List[float]:
    return [_key(s) for s in np.logspace(0, -4, num=16)]


def _key(std: float) -> float:
    """The weight scale as jobs are keyed and described (6 significant digits)."""
    return float("%.6g" % std)


def _usable(job: Job) -> bool:
    """Ran every epoch: succeeded, or failed only at registration (diverged)."""
    return job.state == "SUCCEEDED" or (job.state == "FAILED" and
                                        len(job.epochs) == job.total_epochs and
                                        "non-finite" in job.reason)


def _description(std: float, batchnorm: bool, args) -> str:
    return "figures: %s std=%.6g epochs=%d limit=%d seed=%d" % (
        "batchnorm" if batchnorm else "plain", std, args.epochs, args.limit, args.seed)


def run_jobs(client: Client, scales: List[float], args) -> Dict[Tuple[float, bool], Job]:
    """Succeeded jobs for every (std, batchnorm) pair: reused or trained now."""
    existing = {}
    if not args.retrain:
        for job in client.jobs(model=args.model_prefix + "-batchnorm") + \
                client.jobs(model=args.model_prefix + "-plain"):
            if _usable(job):
                existing[job.description] = job
    submitted = {}
    for std in scales:
        for batchnorm in (True, False):
            description = _description(std, batchnorm, args)
            if description in existing:
                submitted[(std, batchnorm)] = existing[description]
                continue
            submitted[(std, batchnorm)] = client.train(
                "%s-%s" % (args.model_prefix, "batchnorm" if batchnorm else "plain"),
                dataset="mnist-digits", limit=args.limit, epochs=args.epochs, batch_size=100,
                weight_init_std=std, batchnorm=batchnorm, optimizer="sgd", learning_rate=0.01,
                seed=args.seed, description=description)
    done = {}
    for key, job in submitted.items():
        final = job if job.done else client.wait(job.job_id)
        if not _usable(final):
            raise RuntimeError("job %s (%s) ended %s: %s" % (final.job_id, final.description,
                                                             final.state, final.reason))
        done[key] = final
    return done


def _curves(ax, bn: Job, plain: Job, std: float, small: bool):
    x = [e.epoch for e in bn.epochs]
    ax.plot(x, [e.train_accuracy for e in bn.epochs], label="Batch Normalization",
            markevery=2)
    ax.plot([e.epoch for e in plain.epochs], [e.train_accuracy for e in plain.epochs],
            linestyle="--", markevery=2, label="Normal(without BatchNorm)" +
            (" (diverged)" if plain.state == "FAILED" else ""))
    ax.set_ylim(0, 1.0)
    ax.set_xlim(0, max(x) if x else 1)
    ax.set_title("W:" + ("%.4g" % std if small else "std=%g" % std),
                 fontsize=9 if small else 12, loc="left")


def draw_pair(jobs, std: float, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=SINGLE_SIZE, dpi=DPI)
    _curves(ax, jobs[(std, True)], jobs[(std, False)], std, small=False)
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def draw_grid(jobs, scales: List[float], path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(4, 4, figsize=GRID_SIZE, dpi=DPI)
    for i, std in enumerate(scales):
        ax = axes[i // 4][i % 4]
        _curves(ax, jobs[(std, True)], jobs[(std, False)], std, small=True)
        if i % 4:
            ax.set_yticks([])
        else:
            ax.set_ylabel("accuracy")
        if i < 12:
            ax.set_xticks([])
        else:
            ax.set_xlabel("epochs")
        if i == 15:
            ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bnserve.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BNSERVE_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--out", default="figures", help="directory for the PNG files")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=1000, help="training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-prefix", default="figures")
    parser.add_argument("--no-grid", action="store_true", help="only the three pair figures")
    parser.add_argument("--retrain", action="store_true", help="never reuse earlier jobs")
    args = parser.parse_args(argv)

    pairs = [_key(0.05), _key(1.0), _key(1e-4)]
    scales = [] if args.no_grid else sweep_scales()
    os.makedirs(args.out, exist_ok=True)
    with Client(args.server, timeout=600) as client:
        jobs = run_jobs(client, sorted(set(pairs + scales), reverse=True), args)
    written = []
    for std in pairs:
        path = os.path.join(args.out, "batchnorm_std_%g.png" % std)
        draw_pair(jobs, std, path)
        written.append(path)
    if scales:
        path = os.path.join(args.out, "weight_scale_grid.png")
        draw_grid(jobs, scales, path)
        written.append(path)
    for path in written:
        print(path)
    bn, plain = jobs[(0.05, True)], jobs[(0.05, False)]
    print("std 0.05, epoch %d: train accuracy %.3f with BatchNorm, %.3f without" % (
        bn.epochs[-1].epoch, bn.epochs[-1].train_accuracy, plain.epochs[-1].train_accuracy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
