"""imagenet-testbed's accuracy tables (Taori et al. 2020): ``top1s.csv`` and ``model_types.csv``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftlab.errors import InputError


def read_testbed(top1s_csv, model_types_csv=None) -> pd.DataFrame:
    """The imagenet-testbed accuracy table, as fractions, optionally with the model types.

    Parameters
    ----------
    top1s_csv : path or file-like
        ``top1s.csv``: one row per model (column ``model``), one column per evaluation setting, top-1 in
        percent; an empty cell means the model was not evaluated there (NaN here).
    model_types_csv : path or file-like, optional
        ``model_types.csv`` with columns ``model, type, type_description``; left-joined on ``model``
        (models without an entry get NaN type).

    Returns
    -------
    table : DataFrame
        ``model``, then ``type`` and ``type_description`` when types are given, then the settings as
        fractions in [0, 1].
    """
    try:
        df = pd.read_csv(top1s_csv)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputError(f"cannot read the testbed table {top1s_csv}: {e}") from e
    if "model" not in df.columns:
        raise InputError(f"{top1s_csv} has no 'model' column; expected imagenet-testbed's top1s.csv")
    if df["model"].duplicated().any():
        dup = df.loc[df["model"].duplicated(), "model"].iloc[0]
        raise InputError(f"{top1s_csv} lists model {dup!r} more than once")
    df["model"] = df["model"].astype(str)
    cols = [c for c in df.columns if c != "model"]
    vals = df[cols].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = df[cols].notna() & vals.isna()
    if bad.to_numpy().any():
        raise InputError(f"{top1s_csv}: non-numeric accuracy values in column(s) "
                         f"{', '.join(map(str, bad.any()[bad.any()].index[:5]))}")
    arr = vals.to_numpy()
    if np.nanmin(arr, initial=0) < 0 or np.nanmax(arr, initial=0) > 100:
        raise InputError(f"{top1s_csv}: accuracies must be percentages in [0, 100]")
    out = pd.concat([df[["model"]], vals / 100.0], axis=1)
    if model_types_csv is not None:
        try:
            types = pd.read_csv(model_types_csv, dtype=str)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise InputError(f"cannot read the model type table {model_types_csv}: {e}") from e
        need = [c for c in ("model", "type") if c not in types.columns]
        if need:
            raise InputError(f"{model_types_csv} lacks column(s) {', '.join(need)}; expected model,type,"
                             "type_description")
        if "type_description" not in types.columns:
            types["type_description"] = np.nan
        types = types[["model", "type", "type_description"]].drop_duplicates("model", keep="first")
        out = out.merge(types, on="model", how="left", validate="one_to_one")
        out = out[["model", "type", "type_description", *cols]]
    return out
