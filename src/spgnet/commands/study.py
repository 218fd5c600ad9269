"""``spgnet study --study FILE.yaml --out DIR``: a named ablation study (variants x seeds x one
training budget) on synthetic people, resumable, written as a table, plots and a summary
(see :mod:`spgnet.apps.study`; the paper's three studies are in ``studies/``)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, metavar="FILE.yaml", help="the study file (e.g. studies/stage2-variants.yaml)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder; rerun the same command to finish an interrupted study")
    p.add_argument("--check", action="store_true", help="only check the study file (every variant's config)")
    p.add_argument("--progress", action="store_true", help="a progress bar per training run")


def run(args: argparse.Namespace) -> int:
    from spgnet.apps.study import load_study, run_study

    study = load_study(args.study)
    runs = len(study.variants) * len(study.seeds)
    if args.check:
        print(f"{args.study}: {len(study.variants)} variant(s) x {len(study.seeds)} seed(s) = {runs} runs, all valid")
        return 0
    record = run_study(study, args.out, progress=args.progress)
    print(f"wrote {args.out}/table.md, summary.md, results.json and the plots ({runs} runs, "
          f"{record['train_and_score_seconds'] / 60:.1f} min of training and scoring)")
    return 0
