"""``shiftlab spurious components`` and ``spurious export``: components a person judges, and their verdicts.

``components`` fits the class-wise neural PCA of a model on its training set, visualises and ranks the
components (SPECS S3), draws one figure per component (visualisation beside its top images), registers the
figures as a dataset and opens a review task over them in the image-decision view (keys: spurious / not
spurious / inconsistent). ``export`` folds that task's decisions into the published
``spurious_components.json`` shape ``{class: [component indices]}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import typer

from shiftlab.cli.common import (
    check_out_folder,
    executor_option,
    executor_scope,
    out,
    ray_address_option,
    split_names,
    table,
    task_done,
    ws,
)
from shiftlab.errors import InputError

#: a component figure's file name: class and component, so that a decision names both
FIGURE = "k{cls:05d}-c{comp:04d}.png"
FIGURE_RE = re.compile(r"(?:^|/)k(\d{5})-c(\d{4})\.png$")


def register(app: typer.Typer) -> None:
    from shiftlab.cli.spurious import spurious_app

    spurious_app.command("components")(components)
    spurious_app.command("export")(export)


def components(
    model: str = typer.Option(..., "--model", "-m", help="Model spec or name."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="The training set (registered name or path): class "
                                                             "k is fitted on its images labelled k."),
    classes: str = typer.Option(..., "--classes", help="Class indices, comma-separated."),
    top: int = typer.Option(10, "--top", min=1, help="Components per class shown to a person (best ranked)."),
    images: int = typer.Option(5, "--images", min=1, max=20, help="Top training images per component."),
    visualise: int = typer.Option(50, "--visualise", min=1, help="Components visualised and ranked per class "
                                                                 "(the first B by eigenvalue; published: ≥ 50)."),
    steps: int = typer.Option(200, "--steps", min=1, help="APGD iterations per visualisation."),
    seed: int = typer.Option(0, "--seed", help="Seed of the visualisations' random starts (recorded)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for figures and components.json "
                                                            "[default: <workspace>/reports/spurious/<model>]."),
    task: str | None = typer.Option(None, "--task", help="Review task name [default: spurious-<model>]."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing review task of that name."),
    executor: str = executor_option(),
    ray_address: str | None = ray_address_option(),
):
    """Find, visualise and rank the neural-PCA components of classes, and open them for review."""
    from shiftlab.analyze.spurious.components import class_components
    from shiftlab.analyze.spurious.pca import PCAStore
    from shiftlab.data.layouts import read_dataset
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import predict
    from shiftlab.registry import register_dataset
    from shiftlab.report.figures.spurious import component_figure
    from shiftlab.review.tasks import images_task

    try:
        wanted = sorted({int(c) for c in split_names(classes)})
    except ValueError:
        raise InputError(f"--classes takes class indices, e.g. 2,6,9, not {classes!r}") from None
    w = ws()
    clf = load_model(model, workspace=w)
    manifest = read_dataset(dataset, workspace=w)
    n_classes = clf.num_classes
    bad = [c for c in wanted if not 0 <= c < n_classes]
    if bad:
        raise InputError(f"--classes {bad}: the model has classes 0..{n_classes - 1}")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-")[:60]
    folder = check_out_folder(out_dir or w.reports / "spurious" / slug, "--out")
    task_name = task or f"spurious-{slug}"[:100]
    with executor_scope(executor, ray_address):  # the features; the PCA and visualisations stay here
        preds = predict(manifest, [clf], workspace=w, features=True)[0]
    labels = np.where(preds.valid, np.asarray(manifest.labels), -1)
    store = PCAStore(w)
    figures = folder / "figures"
    doc = {"model": model, "model_key": clf.key, "dataset": dataset, "fit_manifest_hash": manifest.content_hash,
           "classes": {}}
    paths = manifest.abspaths()
    names = manifest.vocabulary.names
    items = []
    for k in wanted:
        if (labels == k).sum() < 2:
            raise InputError(f"class {k}: fewer than 2 decodable images labelled {k} in {dataset}")
        cc = class_components(clf, preds.features, labels, k, store=store, fit_manifest_hash=manifest.content_hash,
                              n_visualise=visualise, top=top, images=images, steps=steps, seed=seed)
        doc["settings"] = cc.settings
        (figures / f"{k:05d}").mkdir(parents=True, exist_ok=True)
        entries = []
        t = table(f"class {k} ({names[k] if k < len(names) else k}): {cc.n_fit} fit images, top {len(cc.components)} "
                  f"of {cc.settings['n_visualise']} components by the probability of their visualisation",
                  ["rank", "component", "eigenvalue", "p(class | visualisation)", "top images"], right=("rank",))
        for c in cc.components:
            name = FIGURE.format(cls=k, comp=c.index)
            fig = component_figure(c.visualisation, [paths[r] for r in c.rows], c.alpha, probability=c.probability,
                                   title=f"class {k} ({names[k] if k < len(names) else k}), component {c.index} "
                                         f"(rank {c.rank})")
            fig.savefig(figures / f"{k:05d}" / name, dpi=100, facecolor="white")
            entries.append({"component": c.index, "rank": c.rank, "eigenvalue": c.eigenvalue,
                            "probability": c.probability, "visualisation_alpha": c.visualisation_alpha,
                            "top": [{"id": manifest.ids[r], "alpha": a} for r, a in zip(c.rows, c.alpha)],
                            "figure": f"{k:05d}/{name}"})
            items.append({"id": f"{k:05d}/{name}", "caption": f"class {k}, component {c.index}, rank {c.rank}, "
                                                              f"p = {c.probability:.3f}"})
            t.add_row(str(c.rank), str(c.index), f"{c.eigenvalue:.4g}", f"{c.probability:.3f}",
                      ", ".join(manifest.ids[r] for r in c.rows[:3]) + (" …" if len(c.rows) > 3 else ""))
        doc["classes"][str(k)] = entries
        np.savez(folder / f"visualisations-{k:05d}.npz",
                 **{f"c{c.index:04d}": c.visualisation for c in cc.components})
        out.print(t)
    (folder / "components.json").write_text(json.dumps(doc, indent=1))
    fig_set = read_dataset(figures, layout="imagefolder", workspace=w, progress=False)
    register_dataset(fig_set, task_name, w)
    t = images_task(task_name, "spurious-components", name=task_name, items=_items_by_id(items, fig_set),
                    workspace=w, replace=replace)
    out.print(f"figures and components.json in {folder}")
    task_done(t, len(items), "components to label")


def _items_by_id(items: list[dict], fig_set) -> list[dict]:
    """The task items under the figure dataset's own ids (its layout decides them: file names or paths)."""
    by_file = {Path(i).name: i for i in fig_set.ids}
    return [{**it, "id": by_file[Path(it["id"]).name]} for it in items]


def export(
    task: str = typer.Option(..., "--task", help="The review task 'spurious components' opened."),
    out_file: Path = typer.Option(Path("spurious_components.json"), "--out", help="Where to write "
                                                                                  "{class: [component indices]}."),
    decision: str = typer.Option("spurious", "--decision", help="Which verdict to export."),
):
    """Fold a components review task's decisions into the published ``spurious_components.json`` shape."""
    from shiftlab.cli.common import check_out_file
    from shiftlab.fsutil import atomic_write_json
    from shiftlab.review.export import task_decisions

    check_out_file(out_file, "--out")
    state = task_decisions(task, ws())
    chosen: dict[int, list[int]] = {}
    counts: dict[str, int] = {}
    for target, ev in state.items():
        counts[ev.decision] = counts.get(ev.decision, 0) + 1
        m = FIGURE_RE.search(target)
        if m is None:
            raise InputError(f"task {task!r}: {target!r} is not a component figure (made by 'spurious components')")
        if ev.decision == decision:
            chosen.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    doc = {str(k): sorted(v) for k, v in sorted(chosen.items())}
    atomic_write_json(out_file, doc)
    out.print(f"{sum(len(v) for v in doc.values())} {decision} component(s) over {len(doc)} class(es) → {out_file} "
              f"(decisions in force: {', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'})")
