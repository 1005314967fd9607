#!/usr/bin/env python3
"""NUS-WIDE's official layout at full size, marked synthetic, for scale tests of `tgcn`.

    python scripts/make_nus_wide.py --out DIR [--groundtruth ZIP|none] [--tags FILE|none]
        [--concepts FILE|none] [--images N] [--seed 0]

writes under DIR what `src/data/nus_wide.rs` reads (one row per image, in Imagelist order):

    ImageList/Imagelist.txt                     C:\\ImageData\\Flickr\\<folder>\\<NNNN>_<id>.jpg, CRLF
    ImageList/TrainImagelist.txt, TestImagelist.txt      <folder>\\<NNNN>_<id>.jpg, CRLF
    NUS_WID_Tags/TagList1k.txt                  copied from --tags
    NUS_WID_Tags/AllTags1k.txt                  1000 tab-separated 0/1 columns, CRLF
    ConceptsList/Concepts81.txt                 copied from --concepts
    Groundtruth/AllLabels/Labels_<c>.txt        81 files, one 0/1 a line
    Groundtruth/TrainTestLabels/Labels_<c>_{Train,Test}.txt   162 files, the split's rows
    Low_Level_Features/BoW_int.dat              500 space-separated counts a row, CRLF
    SYNTHETIC.txt                               what is real, what is generated, the counts

What is real. With the official ground truth (`Groundtruth.zip`; by default the one in
../shared/data/nus-wide/ beside the project) the labels are real: every label file is copied
byte for byte from the zip (streamed, never unzipped to disk), truncated to the first N
images with `--images N`; the one corrupt line (`-1130179`, line 78,373 of
`Labels_lake_Train.txt`) is kept.

The split is real too, as far as any file we have can tell. The zip has no image list, but
TrainTestLabels lists the train images' labels and the test images' labels, each in
image-list order. The rule "image row r (0-based) is train iff r mod 5 is 0, 2 or 3"
reproduces every line of both files from AllLabels: all 161,789 + 107,859 rows of 81 labels,
with no mismatch (the corrupt cell aside: it belongs to the 130,621st image, whose AllLabels
lake value is 0). A chance agreement of that size is out of the question, so this is the
official split, up to swaps of images with identical label vectors, which nothing we have
tells apart. (Label equality alone allows other order-preserving interleavings: two of them
differ on about 51,000 images; the periodic rule is the one that explains the whole file.)
The script checks the rule on every run and stops, naming the first differing line, if it
does not hold.

What is generated (all seeded, the same bytes for the same seed; the first N rows of a
run with `--images N` equal those of the full run):
- image paths in the official style, with invented folder names (TagList1k words in
  alphabetical order, in blocks of ~270 images) and invented Flickr ids;
- tags: 10% of the images have none (the real data also has untagged images); the others
  get 1 + Poisson(5) draws, merged when they repeat. A draw comes, with probability 0.7,
  from one of the image's concepts (uniformly), each concept owning a fixed seeded set of
  30 tags (its own name first when it is a tag) with Zipf weights 1/(rank + 1); otherwise,
  and always for an image without a label, from a Zipf(1) background over TagList1k's
  order (which is by frequency);
- BoW_int.dat: visual-word counts Poisson(n · p), n ~ lognormal(median 250, sigma 0.5)
  keypoints, p = 0.6 · background + 0.4 · (mean of the image's concepts' distributions);
  the background ~ Dirichlet(1) and each concept's ~ Dirichlet(0.05) over 500 words, so
  the features are learnable but noisy;
- without the zip (`--groundtruth none`): the labels and split too. 22.4% of the images
  (the real share) have no label; a labelled one has each concept c with probability
  0.275 · rank(c)^-0.7 / 0.776 (a seeded rank order; the real top concept, sky, is on
  27.5% of all images, the tenth 5%) and its most likely concept if it drew none; the
  split follows the official rule above. `--tags none` / `--concepts none` use made-up
  names (`tag0000`, `concept00`).

Memory stays bounded: the per-image arrays are the label columns (3 × 81 bytes an image,
all, train and test rows) and the paths; the 270M tag cells and the 135M feature values
are generated and written in chunks of 4096 rows.
"""

import argparse
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

FULL = 269_648
N_TAGS_MADE_UP, N_CONCEPTS_MADE_UP = 1000, 81
CHUNK = 4096
DIM = 500
PREFIX = "C:\\ImageData\\Flickr\\"
# Seed streams: one generator per (seed, stream, chunk), so a chunk's draws do not depend
# on how many images are written.
PARAMS, LABELS, TAGS, BOW, IDS = 0, 1, 2, 3, 4

P_NO_TAG = 0.10
TAG_LAMBDA = 5.0
P_FROM_CONCEPT = 0.7
TAGS_PER_CONCEPT = 30
BOW_MEDIAN, BOW_SIGMA, BOW_SIGNAL = 250.0, 0.5, 0.4
BG_ALPHA, CONCEPT_ALPHA = 1.0, 0.05
# Priors without the ground truth (see the module docs).
P_UNLABELLED = 1 - 209_347 / FULL
P_TOP, RANK_EXP = 0.275, 0.7
# The official split (module docs): train iff the 0-based image row mod 5 is one of these.
TRAIN_IN_5 = (0, 2, 3)

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nus-wide"


def fail(msg: str) -> None:
    sys.exit(f"make_nus_wide.py: {msg}")


def read_names(path, made_up: str, count: int):
    """(names, raw bytes to copy) of a one-name-a-line list; made-up names for `none`."""
    if path is None:
        names = [made_up.format(i) for i in range(count)]
        return names, "".join(n + "\r\n" for n in names).encode()
    p = Path(path)
    if not p.is_file():
        fail(f"{p} does not exist (pass the official list, or `none` for made-up names)")
    raw = p.read_bytes()
    names = [line.strip() for line in raw.decode("utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        fail(f"{p}: a name repeats")
    return names, raw


def opt_path(value: str):
    return None if value.lower() == "none" else value


# ---------------------------------------------------------------- the ground truth


def line_ends(data: bytes) -> np.ndarray:
    """Byte offsets just past each LF."""
    return np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1


def parse_bits(data: bytes):
    """A 0/1-a-line file → (uint8 values, [(0-based line, text)] of lines that are neither;
    those read as 0 here and are wildcards when the split is matched)."""
    a = np.frombuffer(data, np.uint8)
    if len(a) % 2 == 0 and np.all(a[1::2] == 10) and np.all((a[0::2] == 48) | (a[0::2] == 49)):
        return a[0::2] - 48, []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    vals = np.zeros(len(lines), np.uint8)
    bad = []
    for i, line in enumerate(lines):
        t = line.rstrip(b"\r").strip()
        if t == b"1":
            vals[i] = 1
        elif t != b"0":
            bad.append((i, t.decode("utf-8", "replace")))
    return vals, bad


class Groundtruth:
    """The official labels, read from the zip one file at a time (nothing is unzipped to disk)."""

    def __init__(self, path: Path, concepts):
        self.zip = zipfile.ZipFile(path)
        names = set(self.zip.namelist())
        self.concepts = concepts
        self.files = {}
        for c in concepts:
            fs = (f"AllLabels/Labels_{c}.txt", f"TrainTestLabels/Labels_{c}_Train.txt",
                  f"TrainTestLabels/Labels_{c}_Test.txt")
            missing = [f for f in fs if f not in names]
            if missing:
                fail(f"{path} lacks {', '.join(missing)} (is it the official Groundtruth.zip, "
                     f"and --concepts its Concepts81.txt?)")
            self.files[c] = fs
        self.all = self.train = self.test = None
        self.bad = []  # (file, 0-based line, text, concept index, part)

    def read(self) -> None:
        cols = {"all": [], "train": [], "test": []}
        for ci, c in enumerate(self.concepts):
            for part, name in zip(("all", "train", "test"), self.files[c]):
                vals, bad = parse_bits(self.zip.read(name))
                if cols[part] and len(vals) != len(cols[part][0]):
                    first = self.files[self.concepts[0]][("all", "train", "test").index(part)]
                    fail(f"{name} has {len(vals)} lines, {first} has {len(cols[part][0])}")
                cols[part].append(vals)
                self.bad += [(name, i, t, ci, part) for i, t in bad]
        self.all, self.train, self.test = (np.stack(cols[k]) for k in ("all", "train", "test"))
        n, nt, ns = self.all.shape[1], self.train.shape[1], self.test.shape[1]
        if nt + ns != n:
            fail(f"{nt} train + {ns} test label lines, but {n} images in AllLabels")
        if any(part == "all" for *_, part in self.bad):
            fail("AllLabels has lines that are not 0/1: " + ", ".join(
                f"{f} line {i + 1} ({t})" for f, i, t, _, p in self.bad if p == "all"))

    def copy_truncated(self, out: Path, n: int, n_train: int, n_test: int) -> None:
        """Every label file as it is, cut after the first n / n_train / n_test lines."""
        for c in self.concepts:
            for name, keep in zip(self.files[c], (n, n_train, n_test)):
                data = self.zip.read(name)
                ends = line_ends(data)
                if keep < len(ends):
                    data = data[: ends[keep - 1]] if keep > 0 else b""
                (out / "Groundtruth" / name).write_bytes(data)


def official_split(n: int) -> np.ndarray:
    """Image row r (0-based) is train iff r mod 5 is 0, 2 or 3 (see the module docs)."""
    return np.isin(np.arange(n) % 5, TRAIN_IN_5)


def check_split(gt: Groundtruth):
    """The rule must reproduce every line of both TrainTestLabels files from AllLabels (a
    corrupt cell matches either value). Returns the image row of each corrupt line."""
    is_train = official_split(gt.all.shape[1])
    where = {}
    for part, sel, cols in (("train", is_train, gt.train), ("test", ~is_train, gt.test)):
        rows = np.flatnonzero(sel)
        if len(rows) != cols.shape[1]:
            fail(f"the split rule gives {len(rows)} {part} images, TrainTestLabels has {cols.shape[1]} lines")
        differ = gt.all[:, rows] != cols  # [81, rows]
        for name, line, _, ci, p in gt.bad:
            if p == part:
                differ[ci, line] = False
                where[(name, line)] = int(rows[line])
        if differ.any():
            ci, k = np.argwhere(differ)[0]
            fail(f"the split rule (train iff image row mod 5 is in {TRAIN_IN_5}) does not reproduce "
                 f"TrainTestLabels: {int(differ.any(axis=0).sum())} {part} lines differ, the first "
                 f"{gt.files[gt.concepts[ci]][1 if part == 'train' else 2]} line {k + 1} (image row {rows[k] + 1})")
    return where


# ---------------------------------------------------------------- generated parts


def synth_labels(seed: int, n: int, n_concepts: int) -> np.ndarray:
    """[81, n] labels without the ground truth (the priors of the module docs)."""
    rng = np.random.default_rng([seed, PARAMS, 1])
    rank = rng.permutation(n_concepts) + 1
    rate = np.minimum(P_TOP * rank.astype(float) ** -RANK_EXP / (1 - P_UNLABELLED), 1.0)
    labels = np.zeros((n_concepts, n), np.uint8)
    for start in range(0, n, CHUNK):
        r = np.random.default_rng([seed, LABELS, start // CHUNK])
        lab = r.random((CHUNK, n_concepts)) < rate
        unlabelled = r.random(CHUNK) < P_UNLABELLED
        empty = ~lab.any(axis=1) & ~unlabelled
        lab[empty, int(np.argmax(rate))] = True
        lab[unlabelled] = False
        end = min(n, start + CHUNK)
        labels[:, start:end] = lab[: end - start].T
    return labels


class Params:
    """The seeded per-concept tag sets and visual-word distributions."""

    def __init__(self, seed: int, tags, concepts):
        rng = np.random.default_rng([seed, PARAMS, 0])
        n_tags, n_c = len(tags), len(concepts)
        index = {t: j for j, t in enumerate(tags)}
        k = min(TAGS_PER_CONCEPT, n_tags)
        self.concept_tags = np.zeros((n_c, k), np.int64)
        for c, name in enumerate(concepts):
            chosen = list(rng.choice(n_tags, size=k, replace=False))
            own = index.get(name)
            if own is not None:
                chosen = [own] + [t for t in chosen if t != own][: k - 1]
            self.concept_tags[c] = chosen
        w = 1.0 / (np.arange(k) + 1.0)
        self.concept_cum = np.cumsum(w / w.sum())
        bg = 1.0 / (np.arange(n_tags) + 1.0)
        self.tag_cum = np.cumsum(bg / bg.sum())
        self.bow_bg = rng.dirichlet(np.full(DIM, BG_ALPHA))
        self.bow_concepts = rng.dirichlet(np.full(DIM, CONCEPT_ALPHA), size=n_c)  # [81, 500]


def pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def tag_chunk(seed: int, chunk: int, lab: np.ndarray, p: Params, n_tags: int):
    """lab: [B, 81] bool -> (AllTags1k rows as bytes [B, 2 n_tags + 1], distinct tags per row)."""
    b = lab.shape[0]
    rng = np.random.default_rng([seed, TAGS, chunk])
    no_tag = rng.random(b) < P_NO_TAG
    k = 1 + rng.poisson(TAG_LAMBDA, b)
    k[no_tag] = 0
    img = np.repeat(np.arange(b), k)
    d = len(img)
    u_src, u_concept, u_tag, u_bg = rng.random(d), rng.random(d), rng.random(d), rng.random(d)
    nlab = lab.sum(axis=1)
    rows, cols = np.nonzero(lab)  # row-major: an image's concepts are contiguous
    first = np.concatenate([[0], np.cumsum(nlab)[:-1]])
    from_concept = (u_src < P_FROM_CONCEPT) & (nlab[img] > 0)
    tag = pick(p.tag_cum, u_bg)
    if from_concept.any():
        fi = img[from_concept]
        which = first[fi] + np.minimum((u_concept[from_concept] * nlab[fi]).astype(np.int64), nlab[fi] - 1)
        concept = cols[which]
        tag[from_concept] = p.concept_tags[concept, pick(p.concept_cum, u_tag[from_concept])]
    cells = np.full((b, 2 * n_tags + 1), ord("\t"), np.uint8)
    cells[:, 0 : 2 * n_tags : 2] = ord("0")
    cells[:, -2:] = (ord("\r"), ord("\n"))
    cells[img, 2 * tag] = ord("1")
    distinct = (cells[:, 0 : 2 * n_tags : 2] == ord("1")).sum(axis=1)
    return cells, distinct


def format_counts(counts: np.ndarray) -> bytes:
    """[B, D] non-negative ints -> `v v ... v \\r\\n` rows (a space after every value)."""
    b, dim = counts.shape
    vmax = int(counts.max(initial=0))
    strs = [f"{v} ".encode() for v in range(vmax + 1)] + [b"\r\n"]
    lens_tab = np.array([len(s) for s in strs])
    width = int(lens_tab.max())
    tab = np.zeros((len(strs), width), np.uint8)
    for v, s in enumerate(strs):
        tab[v, : len(s)] = np.frombuffer(s, np.uint8)
    codes = np.empty((b, dim + 1), np.int64)
    codes[:, :dim] = counts
    codes[:, dim] = vmax + 1
    codes = codes.ravel()
    lens = lens_tab[codes]
    ends = np.cumsum(lens)
    starts = ends - lens
    out = np.empty(int(ends[-1]), np.uint8)
    for j in range(width):
        m = lens > j
        out[starts[m] + j] = tab[codes[m], j]
    return out.tobytes()


def bow_chunk(seed: int, chunk: int, lab: np.ndarray, p: Params, keep: int) -> bytes:
    """The first `keep` rows of a chunk's BoW_int.dat (drawn for all its rows)."""
    b = lab.shape[0]
    rng = np.random.default_rng([seed, BOW, chunk])
    npts = rng.lognormal(np.log(BOW_MEDIAN), BOW_SIGMA, b)
    nlab = lab.sum(axis=1, keepdims=True)
    mix = (lab.astype(np.float64) @ p.bow_concepts) / np.maximum(nlab, 1)  # [B, 500]
    prob = np.where(nlab > 0, (1 - BOW_SIGNAL) * p.bow_bg + BOW_SIGNAL * mix, p.bow_bg)
    return format_counts(rng.poisson(npts[:, None] * prob)[:keep])


def image_paths(seed: int, tags, n: int):
    """Official-style relative paths `<folder>\\<NNNN>_<id>.jpg` of the first n of FULL images."""
    folders = sorted(tags)
    f_of = (np.arange(FULL, dtype=np.int64) * len(folders)) // FULL
    start = np.searchsorted(f_of, np.arange(len(folders)))
    ids = np.random.default_rng([seed, IDS, 0]).choice(2_900_000_000, size=FULL, replace=False) + 100_000_000
    return [f"{folders[f_of[r]]}\\{r - start[f_of[r]] + 1:04}_{ids[r]}.jpg" for r in range(n)]


# ---------------------------------------------------------------- main


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--groundtruth", default=str(SHARED / "Groundtruth.zip"),
                    help="the official Groundtruth.zip, or `none` to generate labels and split")
    ap.add_argument("--tags", default=str(SHARED / "TagList1k.txt"), help="TagList1k.txt, or `none`")
    ap.add_argument("--concepts", default=str(SHARED / "Concepts81.txt"), help="Concepts81.txt, or `none`")
    ap.add_argument("--images", type=int, default=FULL, help=f"the first N images (default {FULL})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    n = args.images
    if not 1 <= n <= FULL:
        fail(f"--images must lie in [1, {FULL}], got {n}")
    tags, tags_raw = read_names(opt_path(args.tags), "tag{:04}", N_TAGS_MADE_UP)
    concepts, concepts_raw = read_names(opt_path(args.concepts), "concept{:02}", N_CONCEPTS_MADE_UP)
    gt_path = opt_path(args.groundtruth)
    if gt_path is not None and not Path(gt_path).is_file():
        fail(f"{gt_path} does not exist (the official Groundtruth.zip, or `--groundtruth none`)")
    out = args.out
    for sub in ("ImageList", "NUS_WID_Tags", "ConceptsList", "Groundtruth/AllLabels",
                "Groundtruth/TrainTestLabels", "Low_Level_Features"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    marker = out / "SYNTHETIC.txt"
    write_text(marker, "SYNTHETIC NUS-WIDE layout: INCOMPLETE (make_nus_wide.py is running or was interrupted)\n")

    # Labels and split.
    corrupt = {}
    is_train = official_split(n)
    if gt_path is not None:
        gt = Groundtruth(Path(gt_path), concepts)
        gt.read()
        if gt.all.shape[1] != FULL:
            fail(f"{gt_path}: {gt.all.shape[1]} images, expected {FULL}")
        corrupt = check_split(gt)
        labels = gt.all[:, :n]
        n_train = int(is_train.sum())
        gt.copy_truncated(out, n, n_train, n - n_train)
        bad = gt.bad
        full_labels = gt.all
    else:
        labels = synth_labels(args.seed, n, len(concepts))
        n_train = int(is_train.sum())
        for ci, c in enumerate(concepts):
            col = labels[ci]
            body = np.empty(2 * n, np.uint8)
            body[0::2], body[1::2] = col + 48, 10
            (out / f"Groundtruth/AllLabels/Labels_{c}.txt").write_bytes(body.tobytes())
            for part, sel in (("Train", is_train), ("Test", ~is_train)):
                sub = col[sel]
                body = np.empty(2 * len(sub), np.uint8)
                body[0::2], body[1::2] = sub + 48, 10
                (out / f"Groundtruth/TrainTestLabels/Labels_{c}_{part}.txt").write_bytes(body.tobytes())
        bad = []
        full_labels = labels
    n_test = n - n_train
    (out / "NUS_WID_Tags/TagList1k.txt").write_bytes(tags_raw)
    (out / "ConceptsList/Concepts81.txt").write_bytes(concepts_raw)
    t_labels = time.time() - t0

    # Image lists.
    paths = image_paths(args.seed, tags, n)
    write_text(out / "ImageList/Imagelist.txt", "".join(PREFIX + p + "\r\n" for p in paths))
    write_text(out / "ImageList/TrainImagelist.txt", "".join(p + "\r\n" for p, t in zip(paths, is_train) if t))
    write_text(out / "ImageList/TestImagelist.txt", "".join(p + "\r\n" for p, t in zip(paths, is_train) if not t))

    # Tags and features, chunk by chunk (a chunk's draws use its full 4096 rows' labels,
    # so the first n rows do not depend on n).
    params = Params(args.seed, tags, concepts)
    distinct = np.zeros(n, np.int64)
    with open(out / "NUS_WID_Tags/AllTags1k.txt", "wb") as ftag, \
            open(out / "Low_Level_Features/BoW_int.dat", "wb") as fbow:
        for chunk, start in enumerate(range(0, n, CHUNK)):
            end = min(n, start + CHUNK)
            lab = full_labels[:, start : start + CHUNK].T.astype(bool)
            if lab.shape[0] < CHUNK:
                lab = np.vstack([lab, np.zeros((CHUNK - lab.shape[0], lab.shape[1]), bool)])
            cells, dist = tag_chunk(args.seed, chunk, lab, params, len(tags))
            ftag.write(cells[: end - start].tobytes())
            distinct[start:end] = dist[: end - start]
            fbow.write(bow_chunk(args.seed, chunk, lab, params, end - start))

    # The summary, and what the loader should keep of the 10 largest concepts.
    counts = labels.sum(axis=1).astype(np.int64)
    order = sorted(range(len(concepts)), key=lambda c: (-counts[c], c))
    top10 = order[:10]
    any_label = labels.any(axis=0)
    top_mask = labels[sorted(top10)].any(axis=0)
    tagged = distinct > 0
    items = top_mask & tagged
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f != marker)
    wall = time.time() - t0
    real = gt_path is not None
    lines = [
        "SYNTHETIC NUS-WIDE layout, written by scripts/make_nus_wide.py. Numbers measured on it are",
        "not NUS-WIDE results: the tags, image features and image paths are generated.",
        "",
        f"command: {' '.join(sys.argv)}",
        f"arguments: out={out} groundtruth={gt_path} tags={opt_path(args.tags)} concepts={opt_path(args.concepts)} "
        f"images={n} seed={args.seed}",
        "",
        "## real",
    ]
    if real:
        lines += [
            f"- Groundtruth/AllLabels/*.txt and Groundtruth/TrainTestLabels/*.txt: copied byte for byte from {gt_path}",
            f"  ({'whole' if n == FULL else f'the first {n} / {n_train} / {n_test} lines of the all / train / test files'}).",
            "- the split: image row r (0-based, Imagelist order) is train iff r mod 5 is 0, 2 or 3. The zip has no",
            "  image list; this rule reproduces every line of both TrainTestLabels files from AllLabels (checked",
            "  on this run), so it is the official split up to swaps of images with identical labels.",
        ]
        for name, line, text, _, _ in bad:
            row = corrupt.get((name, line))
            at = f"the image on line {row + 1} of Imagelist.txt" if row is not None else "beyond these images"
            kept = "kept in the copy" if row is not None and row < n else "not in the truncated copy"
            lines.append(f"- corrupt input, as distributed: {name} line {line + 1} is {text!r} ({at}; {kept}).")
    else:
        lines += ["- no file: the labels and the split are generated too (--groundtruth none)."]
    for what, src in (("NUS_WID_Tags/TagList1k.txt", opt_path(args.tags)),
                      ("ConceptsList/Concepts81.txt", opt_path(args.concepts))):
        lines.append(f"- {what}: copied from {src}" if src else f"- {what}: made-up names (`none`)")
    lines += [
        "",
        "## generated (see the script's docs for the priors)",
        "- ImageList/*.txt: official-style paths with invented folders and Flickr ids",
        "- NUS_WID_Tags/AllTags1k.txt: tags conditioned on the labels, 10% of the images untagged",
        "- Low_Level_Features/BoW_int.dat: 500-d visual-word counts conditioned on the labels",
    ]
    if not real:
        lines.append("- Groundtruth/: labels and split from the priors of the script's docs")
    lines += [
        "",
        "## counts",
        f"images: {n}",
        f"train: {n_train}",
        f"test: {n_test}",
        f"with_label: {int(any_label.sum())}",
        f"tagged: {int(tagged.sum())}",
        f"tags_per_tagged_image: {distinct[tagged].mean() if tagged.any() else 0:.3f}",
        "top10: " + ", ".join(f"{concepts[c]} {counts[c]}" for c in top10),
        f"top10_with_label: {int(top_mask.sum())}",
        f"top10_no_tag: {int((top_mask & ~tagged).sum())}",
        f"top10_items: {int(items.sum())}",
        f"top10_train: {int((items & is_train).sum())}",
        f"top10_test: {int((items & ~is_train).sum())}",
        f"bytes: {written}",
        f"wall_s: {wall:.1f}",
    ]
    text = "\n".join(lines) + "\n"
    write_text(marker, text)
    print(text[text.index("## real"):], end="")
    print(f"(labels and split {t_labels:.1f} s, total {wall:.1f} s; {written / 1e6:.0f} MB under {out})")


if __name__ == "__main__":
    main()
