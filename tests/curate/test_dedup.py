"""Near-duplicate detection and resolution (SPECS S1.3, S1.4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.metrics import structural_similarity

from shiftlab.curate.dedup import (
    IMAGENETV2_THRESHOLDS,
    NO_THRESHOLD,
    QUEUE_COLUMNS,
    TABLE_COLUMNS,
    align_views,
    aligned_knn,
    duplicate_links,
    find_near_duplicates,
    grey_thumbnails,
    phash_bits,
    quantile_thresholds,
    queue_thresholds,
    read_review_csv,
    resolve_duplicates,
    review_queue,
    review_thresholds,
)
from shiftlab.curate.dedup.ssim import dssim_pairs, ssim_pairs
from shiftlab.errors import InputError
from shiftlab.metrics.neighbors import knn
from shiftlab.world.imagenetv2 import WORLD_SIZE  # 64 px: room for the 35-px SSIM window around 32-px digits


# --- ssim / phash ----------------------------------------------------------------------------------------
def _skimage(a, b):
    return np.array([structural_similarity(x.transpose(1, 2, 0), y.transpose(1, 2, 0), win_size=35,
                                           channel_axis=-1, data_range=255) for x, y in zip(a, b)])


def test_ssim_matches_skimage_on_random_and_smooth_pairs():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (3, 3, 48, 40), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 60, a.shape), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.stack([np.stack([(127 + 120 * np.sin(xx / (5 + c) + yy / 9 + s)) for c in range(3)])
                       for s in range(2)]).astype(np.uint8)
    shifted = np.roll(smooth, 2, axis=-1)
    # uint8 pixels take the exact integer path, float64 ones (not integer-valued) the float path. Both agree
    # with scikit-image to ~1e-15; 1e-10 (not the spec's 1e-4) so that a wrong constant or covariance
    # normalisation, which moves SSIM by ~1e-7 on these pairs, cannot pass.
    fa, fb = a + rng.random(a.shape), b * 0.9 + rng.random(b.shape)
    for x, y in ((a, b), (smooth, shifted), (a, a), (fa, fb)):
        assert np.abs(ssim_pairs(x, y) - _skimage(x, y)).max() <= 1e-10
    # flat images: zero variance, so only the constants keep SSIM finite (black vs white: ≈ 1e-4)
    black, white = np.zeros_like(a), np.full_like(a, 255)
    for x, y in ((black, white), (white, white)):
        np.testing.assert_allclose(ssim_pairs(x, y), _skimage(x, y), rtol=1e-9, atol=0)
    # another window, another data range, a rectangular image just one window high
    tall = rng.integers(0, 256, (2, 1, 7, 30), dtype=np.uint8)
    tall_b = rng.integers(0, 256, tall.shape, dtype=np.uint8)
    ref = [structural_similarity(x[0], y[0], win_size=7, data_range=100) for x, y in zip(tall, tall_b)]
    np.testing.assert_allclose(ssim_pairs(tall, tall_b, win_size=7, data_range=100), ref, rtol=0, atol=1e-10)
    # batches, a partial last one included, give what single pairs give
    np.testing.assert_allclose(ssim_pairs(a, b, batch_size=1), ssim_pairs(a, b, batch_size=2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dssim_pairs(a, a), 0.0, atol=1e-12)
    with pytest.raises(InputError):
        ssim_pairs(a[:, :, :30, :30], b[:, :, :30, :30])


def test_phash_bits_give_imagehash_hamming_distance():
    import imagehash
    from PIL import Image

    rng = np.random.default_rng(3)
    px = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    bits = phash_bits(px)
    h = [imagehash.phash(Image.fromarray(p.transpose(1, 2, 0))) for p in px]
    d, i = knn(bits[:1], bits, 4)
    for dist, j in zip(d[0], i[0]):
        assert dist == h[0] - h[j]


# --- aligned --------------------------------------------------------------------------------------------
def test_align_views():
    v = align_views(32)
    assert len(v) == 38 and v[0].tolist() == [32, 0, 0]  # identity, 8 shifts, 4 + 9 + 16 crops
    assert sorted(map(tuple, v[1:9])) == sorted((32, dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy)
    crops = v[9:]
    assert set(crops[:, 0]) == {31, 30, 29} and (crops[:, 1:] >= 0).all() and (crops[:, 1:] + crops[:, :1] <= 32).all()
    assert len(align_views(12, 1, 0.8)) == 9 + 4 + 9 and len(align_views(32, 2, 1.0)) == 25
    with pytest.raises(InputError):
        align_views(32, 1, 0.0)


def test_aligned_knn_is_exact_whatever_the_chunks(tmp_path):
    from shiftlab.curate.dedup import view_vectors

    rng = np.random.default_rng(5)
    s = 12
    q = (rng.random((23, s, s)) * 255).astype(np.float32)
    r = (rng.random((40, s, s)) * 255).astype(np.float32)
    r[7] = np.roll(q[3], 1, axis=0)  # copies whose many views crowd the first rows of the search
    r[9] = q[5] * 0.9 + 10
    v = align_views(s, 1, 0.8)
    qv = view_vectors(q, v).reshape(len(q), len(v), -1).astype(np.float64)
    rv = view_vectors(r, v).reshape(len(r), len(v), -1).astype(np.float64)
    crop = v[:, 0] < s
    # brute force: the plain query against every view of the reference, every crop of the query against
    # the plain reference
    d = np.minimum(((qv[:, None, :1] - rv[:, None].transpose(1, 0, 2, 3)) ** 2).sum(-1).min(-1),
                   ((qv[:, None, crop] - rv[None, :, :1]) ** 2).sum(-1).min(-1))
    for k in (7, 40):  # 40 = all references: the first try of pass (1) falls short, so the retry runs
        order = np.lexsort((np.broadcast_to(np.arange(len(r)), d.shape), d), axis=1)[:, :k]
        for budget in (1 << 30, 3 * len(v) * s * s * 4):  # one chunk; 3 images' views per chunk
            dist, idx = aligned_knn(q, r, k, views=v, budget=budget)
            np.testing.assert_array_equal(idx, order)
            np.testing.assert_allclose(dist, np.take_along_axis(d, order, 1), rtol=0, atol=1e-12)
    assert idx[3, 0] == 7 and idx[5, 0] == 9 and dist[5, 0] < 1e-9  # brightness and contrast do not count
    a = aligned_knn(q, r, 5, views=v, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("aligned-*.npz"))) == 1
    b = aligned_knn(q, r, 5, views=v, cache_dir=tmp_path)
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(InputError):
        aligned_knn(q, r[:, :10], 3)


def test_aligned_sees_through_the_worlds_near_copy_transforms():
    """Copies made by the world's own planting code (re-encoding, 1-px shifts, brightness, crop-resize)
    of smooth random images: each copy's nearest image by the aligned distance is its source, within the
    review threshold, and no distinct image is."""
    from scipy import ndimage

    from shiftlab.world.plants import DUPLICATE_TRANSFORMS, near_copy

    rng = np.random.default_rng(6)
    noise = ndimage.gaussian_filter(rng.random((60, 32, 32, 3)), (0, 1.5, 1.5, 0))
    src = np.clip((noise - noise.mean()) / noise.std() * 50 + 128, 0, 255).astype(np.uint8)
    copies = np.stack([near_copy(src[j], DUPLICATE_TRANSFORMS[j % 4], rng)[0] for j in range(20)])
    thumbs = grey_thumbnails(np.concatenate([src, copies]).transpose(0, 3, 1, 2))
    dist, idx = aligned_knn(thumbs[60:], thumbs[:60], 2)
    thr = IMAGENETV2_THRESHOLDS["aligned"]
    assert idx[:, 0].tolist() == list(range(20))
    assert (dist[:, 0] < thr).all() and (dist[:, 1] > thr).all()


# --- review ----------------------------------------------------------------------------------------------
def _table(rows):
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def test_review_queue_and_thresholds():
    t = _table([
        ("q1", "pool", "q1", "l2", 0, 0.0, True, False),
        ("q1", "pool", "p9", "l2", 1, 5e7, False, True),     # same source: never queued
        ("q1", "pool", "p2", "l2", 2, 9e7, False, False),    # within 1.2e8: queued
        ("q1", "train", "t1", "l2", 0, 1.1e8, False, False),
        ("q1", "train", "t2", "l2", 40, 1.0, False, False),  # beyond review_k
        ("q2", "train", "t1", "dssim", 0, 0.3, False, False),
        ("q2", "train", "t3", "phash", 0, 10, False, False),
        ("q2", "train", "t4", "embedding", 0, 2e4, False, False),
    ])
    q = review_queue(t)
    assert list(q.columns) == QUEUE_COLUMNS
    assert set(zip(q.query_id, q.reference_id, q.metric)) == {("q1", "p2", "l2"), ("q1", "t1", "l2"),
                                                             ("q2", "t3", "phash")}
    q = review_queue(t, {"dssim": 0.5, "phash": 3}, review_k=50)
    assert set(zip(q.reference_id, q.metric)) == {("p2", "l2"), ("t1", "l2"), ("t2", "l2"), ("t1", "dssim")}
    assert IMAGENETV2_THRESHOLDS["l2"] == 1.2e8 and IMAGENETV2_THRESHOLDS["dssim"] == 0.2205

    th = review_thresholds(t)
    # over the reviewed window only (ranks < 30, as ImageNetV2): p2, not t2 at rank 40; q2 has no l2 row at
    # all, so its l2 threshold is 0.0 (not reviewed), as ImageNetV2's
    assert th.loc["q1", "l2"] == 9e7 and th.loc["q2", "l2"] == 0.0
    assert review_thresholds(t, review_k=50).loc["q1", "l2"] == 1.0  # a deeper window sees t2
    th = review_thresholds(t, reviewed_pairs=[("t2", "q1"), ("q1", "p2")], blacklisted={"t1"})
    assert th.loc["q1", "l2"] == NO_THRESHOLD  # p9 is same-source, q1 itself
    assert th.loc["q2", "dssim"] == NO_THRESHOLD and th.loc["q2", "phash"] == 10



def test_queue_thresholds_from_defaults_quantiles_and_overrides():
    t = _table([
        ("q1", "pool", "q1", "l2", 0, 0.0, True, False),     # itself: never counts
        ("q1", "pool", "p9", "l2", 1, 1.0, False, True),     # same source: never counts
        ("q1", "pool", "p2", "l2", 2, 10.0, False, False),
        ("q1", "pool", "p3", "l2", 3, 20.0, False, False),
        ("q1", "pool", "p4", "l2", 4, 30.0, False, False),
        ("q1", "pool", "p5", "l2", 9, 1000.0, False, False),  # beyond review_k = 5
        ("q1", "pool", "p2", "aligned", 0, 0.5, False, False),
        ("q1", "pool", "q1", "dssim", 0, 0.0, True, False),   # dssim's only looked-at row is itself…
        ("q1", "pool", "p7", "dssim", 7, 0.4, False, False),  # …so its quantile comes from the deeper one
        ("q1", "pool", "p2", "embedding", 0, 50.0, False, False),
    ])
    assert queue_thresholds(t) == {m: IMAGENETV2_THRESHOLDS[m] for m in ("l2", "aligned", "dssim", "embedding")}
    # the 25 % quantile of 10, 20, 30 is 15 (linear interpolation), the median 20; aligned keeps 0.02
    q = queue_thresholds(t, quantile=0.25, review_k=5)
    assert q == {"l2": 15.0, "aligned": 0.02, "dssim": 0.4, "embedding": 50.0}
    assert queue_thresholds(t, quantile=0.5, review_k=5)["l2"] == 20.0
    # an explicit threshold wins over the quantile; fc7 is ImageNetV2's name for embedding's
    q = queue_thresholds(t, {"l2": 12.0, "fc7": 7.0}, quantile=0.25, review_k=5)
    assert q["l2"] == 12.0 and q["embedding"] == 7.0 and "fc7" not in q and "phash" not in q
    for bad in (0, 1, 1.5, float("nan")):
        with pytest.raises(InputError, match="quantile"):
            quantile_thresholds(t, bad)

def test_read_review_csv(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("query,reference,is_duplicate,reviewer\na,b,true,ann\na,c,0,bob\nb,a,no,cy\nd,e,YES,ann\n")
    r = read_review_csv(f)
    assert r["is_duplicate"].tolist() == [True, False, False, True]
    assert duplicate_links(r) == [("d", "e")]  # the later decision on (a, b) wins
    for text in ("query,reference,is_duplicate,reviewer,extra\n", "query,reference,is_duplicate\n",
                 "query,reference,is_duplicate,reviewer\na,b,maybe,ann\n",
                 "query,reference,is_duplicate,reviewer\na,b,true\n", ""):
        f.write_text(text)
        with pytest.raises(InputError) as e:
            read_review_csv(f)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError):
        read_review_csv(tmp_path / "missing.csv")


# --- resolution -----------------------------------------------------------------------------------------
def _cands(rows):
    return pd.DataFrame(rows, columns=["id", "class", "frequency", "source_id"])


def _kept(res):
    return set(res.loc[res["keep"], "id"])


def test_resolve_singletons_originals_and_source_links():
    c = _cands([("a", "x", 0.9, "s1"), ("b", "x", 0.8, "s1"), ("c", "y", 0.9, None), ("d", "y", 0.5, None),
                ("e", "z", 0.1, None)])
    res = resolve_duplicates(c, [("c", "orig-1")], original_ids={"orig-1"})
    assert _kept(res) == {"a", "d", "e"}  # a/b share a source; c duplicates an original image
    r = res.set_index("id")
    assert r.loc["c", "reason"] == "duplicate of original orig-1"
    assert r.loc["b", "component"] == "a" and r.loc["b", "reason"] == "duplicate of a"
    assert r.loc["e", "reason"] == "unique"
    assert list(res["id"]) == list(c["id"])
    # a component with an original loses all its candidates, however linked
    res = resolve_duplicates(c, [("a", "c"), ("c", "t-1")], original_ids={"t-1"})
    assert _kept(res) == {"d", "e"}


def test_resolve_class_choice_and_tie_breaks():
    # classes x (two good) and y (one good): y has fewer good candidates, so y's best is kept
    c = _cands([("a", "x", 0.9, None), ("b", "x", 0.8, None), ("c", "y", 0.75, None), ("d", "z", 0.65, None)])
    links = [("a", "b"), ("b", "c"), ("c", "d")]
    assert _kept(resolve_duplicates(c, links)) == {"c"}
    # no class ≥ 0.7: fallback ≥ 0.6 (z), and x at 0.5 is not eligible
    c2 = _cands([("a", "x", 0.5, None), ("d", "z", 0.65, None)])
    assert _kept(resolve_duplicates(c2, [("a", "d")])) == {"d"}
    # none ≥ 0.6: ImageNetV2 takes the one class at the max, the larger class on a tie (w over v)
    c3 = _cands([("a", "w", 0.3, None), ("b", "v", 0.3, None), ("c", "v", 0.1, None), ("d", "u", 0.2, None)])
    assert _kept(resolve_duplicates(c3, [("a", "b"), ("b", "c"), ("c", "d")])) == {"a"}
    # equal good counts: class name decides (m before n); within class, equal frequency: the larger id
    c4 = _cands([("p0", "n", 0.9, None), ("p1", "n", 0.9, None), ("p2", "m", 0.8, None), ("p3", "m", 0.8, None)])
    res = resolve_duplicates(c4, [("p0", "p1"), ("p1", "p2"), ("p2", "p3")])
    assert _kept(res) == {"p3"} and res.set_index("id").loc["p3", "reason"] == "best of class m"
    # override by component name or by any member; bad overrides say so
    links = [("p0", "p1"), ("p1", "p2"), ("p2", "p3")]
    assert _kept(resolve_duplicates(c4, links, overrides={"p0": "p1"})) == {"p1"}
    assert _kept(resolve_duplicates(c4, links, overrides={"p3": "p2"})) == {"p2"}
    with pytest.raises(InputError):
        resolve_duplicates(c4, [("p1", "p2")], overrides={"p1": "p3"})  # p3 is not in p1's component
    with pytest.raises(InputError):
        resolve_duplicates(c4, [], overrides={"zz": "p1"})


# --- the digits world: the acceptance bar -----------------------------------------------------------------
# this module's own settings, deeper-cut than the world pipeline's (pipeline.TEST_REVIEW_K 10, quantile 0.02):
# the planted copy is (almost always) among the first two non-self neighbours
TEST_REVIEW_K = 2
TEST_QUANTILE = 0.2


@pytest.fixture(scope="module")
def world_dedup(tmp_path_factory):
    from shiftlab.progress import set_quiet
    from shiftlab.workspace import Workspace
    from shiftlab.world import build_world
    from shiftlab.world.zoo import train_zoo

    set_quiet(True)
    ws = Workspace.resolve(tmp_path_factory.mktemp("dedup") / "ws")
    world = build_world(ws, progress=False)
    train_zoo(world.manifest("train"), ws, names=["cnn-medium-s0"], progress=False)
    refs = {s: world.manifest(s) for s in ("train", "test", "pool")}
    table = find_near_duplicates(world.manifest("pool"), refs, ["l2", "dssim", "phash", "embedding"], k=10,
                                 review_k=TEST_REVIEW_K, dssim_k=3, feature_model="world:cnn-medium-s0",
                                 size=WORLD_SIZE, workspace=ws, device="cpu")
    return world, ws, table


def test_world_review_queue_finds_the_planted_duplicates(world_dedup):
    world, _, table = world_dedup
    assert set(table["metric"]) == {"l2", "dssim", "phash", "embedding"}
    assert table.groupby(["query_id", "reference_split", "metric"])["rank"].max().max() <= 9
    assert table.loc[table["is_self"], "distance"].abs().max() == 0
    # World thresholds from the data: the 20% quantile, per metric, of the distances to the first
    # non-self, non-same-source neighbour. (The ImageNetV2 numbers are for 256-px photos; the world's
    # digits resemble one another far more than photos do.)
    thr = quantile_thresholds(table, TEST_QUANTILE, review_k=TEST_REVIEW_K)
    queue = review_queue(table, thr, review_k=TEST_REVIEW_K)
    dups = world.truth()["duplicates"]
    assert len(dups) == 66
    planted = {frozenset((d["id"], d["source_id"])) for d in dups}
    queued = {frozenset(p) for p in zip(queue["query_id"], queue["reference_id"])}
    pool = world.manifest("pool").table.set_index("id")["source_id"]
    same_source = {p for p in planted if len({pool.get(x, x) for x in p}) == 1}  # linked without review
    found = (queued & planted) | same_source
    per_metric = {m: (len({frozenset(p) for p in zip(g["query_id"], g["reference_id"])} & planted), len(g))
                  for m, g in queue.groupby("metric")}
    print(f"\nworld dedup: thresholds {thr}; recall {len(found)}/66 ({len(queued & planted)} queued + "
          f"{len(same_source)} same-source); queue {len(queue)} rows, {len(queued)} pairs; "
          f"per metric (planted, rows): {per_metric}")
    assert len(found) >= 0.95 * 66

    # treat queued planted pairs as reviewed duplicates; originals = train ∪ test
    links = [tuple(p) for p in queued & planted]
    pt = world.manifest("pool").table  # no selection frequencies here: all 1.0, so the larger id is kept
    cands = pd.DataFrame({"id": pt["id"], "class": pt["label"].astype(str), "frequency": 1.0,
                          "source_id": pt["source_id"]})
    originals = set(world.manifest("train").ids) | set(world.manifest("test").ids)
    res = resolve_duplicates(cands, links, originals).set_index("id")
    of_originals = [d["id"] for d in dups if d["source_split"] in ("train", "test")
                    and frozenset((d["id"], d["source_id"])) in queued]
    assert not res.loc[of_originals, "keep"].any()
    within = [d for d in dups if d["source_split"] == "pool"]
    assert all(res.loc[d["id"], "keep"] != res.loc[d["source_id"], "keep"] for d in within)


def test_world_aligned_metric_queues_every_reviewable_planted_pair(world_dedup):
    """The acceptance bar, strictly: the review queue itself holds the planted pairs, with the aligned
    metric's own threshold (nothing read off the data), among the first TEST_REVIEW_K neighbours."""
    world, ws, _ = world_dedup
    pool = world.manifest("pool")
    refs = {s: world.manifest(s) for s in ("train", "test", "pool")}
    table = find_near_duplicates(pool, refs, ["aligned"], k=10, review_k=TEST_REVIEW_K, size=WORLD_SIZE,
                                 workspace=ws, device="cpu")
    queue = review_queue(table, review_k=TEST_REVIEW_K)
    dups = world.truth()["duplicates"]
    planted = {frozenset((d["id"], d["source_id"])) for d in dups}
    source = pool.table.set_index("id")["source_id"]
    same_source = {p for p in planted if len({source.get(x, x) for x in p}) == 1}
    queued = {frozenset(p) for p in zip(queue["query_id"], queue["reference_id"])}
    print(f"\nworld aligned: queue {len(queue)} rows, {len(queued)} pairs, {len(queued & planted)} planted "
          f"of {len(planted - same_source)} queueable ({len(same_source)} share a source id)")
    assert len(same_source) == 8 and planted - same_source <= queued  # all 58 that S1.3 may queue
    assert len(queued) <= 1.5 * len(planted - same_source)  # and little else to review
    thr = IMAGENETV2_THRESHOLDS["aligned"]
    near = table[(table["rank"] < TEST_REVIEW_K) & ~table["is_self"] & (table["distance"] <= thr)]
    assert same_source <= {frozenset(p) for p in zip(near["query_id"], near["reference_id"])}  # found as well
    # reviewed as duplicates, they leave no copy of a train or test image among the kept candidates
    pt = pool.table
    cands = pd.DataFrame({"id": pt["id"], "class": pt["label"].astype(str), "frequency": 1.0,
                          "source_id": pt["source_id"]})
    originals = set(world.manifest("train").ids) | set(world.manifest("test").ids)
    res = resolve_duplicates(cands, [tuple(p) for p in queued & planted], originals).set_index("id")
    copies = [d["id"] for d in dups if d["source_split"] in ("train", "test")]
    assert len(copies) == 50 and not res.loc[copies, "keep"].any()


def test_world_ssim_matches_skimage_on_real_pairs(world_dedup):
    from shiftlab.curate.dedup import scaled_pixels

    world, ws, _ = world_dedup
    px, _ = scaled_pixels(world.manifest("pool"), ws, size=WORLD_SIZE)
    a, b = np.asarray(px[:6]), np.asarray(px[6:12])
    assert np.abs(ssim_pairs(a, b) - _skimage(a, b)).max() <= 1e-4


def test_find_near_duplicates_validates_before_work():
    with pytest.raises(InputError, match="unknown near-duplicate metric"):
        find_near_duplicates(None, {"x": None}, ["l3"])
    with pytest.raises(InputError, match="needs a feature model"):
        find_near_duplicates(None, {"x": None}, ["embedding"])
    with pytest.raises(InputError, match="reference set"):
        find_near_duplicates(None, {}, ["l2"])


def test_world_chunked_run_gives_the_same_table(world_dedup, tmp_path):
    world, ws, _ = world_dedup
    q = world.manifest("pool").subset(np.arange(30))
    refs = {"test": world.manifest("test").subset(np.arange(50)), "pool": q}
    kw = {"k": 8, "review_k": 4, "size": WORLD_SIZE, "workspace": ws, "device": "cpu"}
    a = find_near_duplicates(q, refs, ["l2", "phash", "dssim"], chunk=1024, cache_dir=tmp_path / "a", **kw)
    b = find_near_duplicates(q, refs, ["l2", "phash", "dssim"], chunk=7, cache_dir=tmp_path / "b", **kw)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[a["is_self"], "rank"].eq(0).all() and a["is_self"].sum() == 3 * 30
    alone = find_near_duplicates(q, refs, ["dssim"], **kw)  # shortlisted by l2 alone
    assert set(alone["metric"]) == {"dssim"} and alone.groupby("query_id")["reference_id"].size().min() >= 8
    some = find_near_duplicates(q, refs, ["l2", "dssim"], reference_metrics={"test": ["l2"]}, **kw)
    assert set(some.loc[some["reference_split"] == "test", "metric"]) == {"l2"}
    assert set(some.loc[some["reference_split"] == "pool", "metric"]) == {"l2", "dssim"}
    with pytest.raises(InputError, match="reference_metrics"):
        find_near_duplicates(q, refs, ["l2"], reference_metrics={"test": ["dssim"]}, **kw)


def test_ssim_on_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (40, 3, 256, 256), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 3, 256, 256), dtype=np.uint8)
    np.testing.assert_allclose(ssim_pairs(a, b, device="cuda"), ssim_pairs(a, b), atol=1e-9)
