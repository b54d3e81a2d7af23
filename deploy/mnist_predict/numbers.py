"""Read whole numbers: split the cleaned ink into digits and let the model choose where one ends.

    layout = numbers.layout_of(gray)            # candidate digits, framed as single-digit prediction frames
    reading = numbers.choose(layout, predictor.run(layout.inputs))

Segmentation is over-segmentation plus a search, the classic recipe for handwritten numbers (the
segmentation-recognition loop of check and postal-code readers):

1. Clean: the working copy, ink map, rule removal and Otsu mask of the single-digit path (images.py), at a
   resolution that keeps a wide image's digits as many pixels as a single digit gets.
2. Pieces: the mask's 8-connected components; rules, page edges, a box drawn around the number and specks
   are dropped.
3. Lines: pieces chained left to right by vertical overlap with their neighbour (a tilted photo is still one
   line), read top to bottom and joined by a space.
4. Atoms: each piece, and a piece wider than a digit cut by paths from its top to its bottom that cross
   the least ink (where touching digits meet), more cuts than digits, so that every digit is a run of
   consecutive atoms.
5. Candidates: every run of up to MAX_ATOMS atoms no wider than a digit and a bit (MAX_WIDTH), and not
   far too unlikely a digit by its shape alone (MIN_PRIOR), is framed exactly as single-digit prediction
   frames its ink. Merging the pieces of one digit (a 5's cap, a broken 4) and splitting touching digits
   are the same choice: which runs to take.
6. Search: dynamic programming over the atoms picks the runs with the highest joint log-probability plus
   a log-prior of their shape (a digit is about as tall as its line and not much wider; a cut through a
   piece no wider than a digit is suspect), for each digit count, so that `length` can prefer the count a
   meter has.
7. Where the export has a line reader (mnist_predict.lines), it reads each line's image whole, with no
   cuts, and with_line_reading weighs its text against the search's: the same text stands, different
   texts flag the row.

The reading's confidence is the product of its digits' top probabilities (with a calibrated model and
independent digits, the probability that every digit is right given the cuts) times the share of the
weight of all chains that read the same text (that the cuts are right). A run the model does not take for
a digit (top probability below REJECT) reads as "?", and the row is flagged.

Its twin, deploy/web/numbers.js, reads numbers on the browser page the same way, pixel for pixel
(tests/test_web.py).
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import images as image_io
from . import lines as line_reader
from . import reading_confidence

WORK = image_io.WORK  # the working copy's longest side for a square image, as in single-digit prediction ...
MAX_WORK = 3 * WORK  # ... and for a wide one (a number), up to this, so that each digit keeps its pixels
MAX_ATOMS = 6  # atoms one digit may be made of
# Which runs of atoms are framed at all. A run of several atoms wider than MAX_WIDTH line heights (no
# reading of the bench's 1,100 numbers took one wider than 1.25), or one whose shape alone makes it e**5 =
# 150 times less likely than a digit (MIN_PRIOR: two of the costs below at full), is not: 22% fewer
# candidates than up to 1.6 wide with no MIN_PRIOR, and of those numbers no text changed (one confidence
# rose from 0.77 to 0.84)
MAX_WIDTH, MIN_PRIOR = 1.3, -5.0
SPECK = 0.03  # pieces lighter than this share of the heaviest are specks
# A piece with FRAME_SHARE of its ink within FRAME_BORDER of its box's smaller side from the box's edges,
# around another piece at least a third as tall, is a box drawn around the number (a score box), not a digit
FRAME_BORDER, FRAME_SHARE = 0.15, 0.9
FRAME_GAP = 2  # px of the working copy: a box's pieces this close are one box ...
# ... looked for only where a piece's ink fills less than this share of its bounding box, as a box's corner does
# (every box the bench's forms lost had one under 0.1; digits' pieces fill 0.13 or more): it saves 5% of the time
FRAME_DENSITY = 0.1
WIDE = 0.7  # a piece wider than this many line heights may be several digits touching
DIAGONAL = 0.3  # what a sideways step of a cut costs, in pixels of ink crossed
STEP = 0.25  # cuts through touching digits start this many line heights apart ...
# ... and closer in a piece wider than FINE_WIDE line heights, which holds two digits or more: of 400 touching
# numbers (the sample's test digits, not the bench's), 45.5% of scans and 39.5% of photos read whole against
# 35.5% and 32.5% at STEP, with saturation below 0.12; narrower pieces, and so loose and tight numbers, as before
FINE_STEP, FINE_WIDE = 0.12, 1.4
MIN_ATOM = 0.01  # an atom holds at least this many square line heights of ink
WIDEST, WIDE_COST = 1.1, 8.0  # a run wider than WIDEST line heights costs WIDE_COST (log) per line height more
SHORT, SHORT_COST = 0.55, 3.0  # one shorter than SHORT line heights costs SHORT_COST
# log-cost of cutting through ink: high through a piece no wider than one digit (a wide 0 is one digit far
# more often than two touching), low through one as wide as two
CUT_COST, PAIR, PAIR_CUT_COST = 3.0, 1.15, 0.0
GAP, GAP_COST = 0.05, 3.0  # a run joining pieces this many line heights apart costs GAP_COST (log)
SOFT = 2  # a candidate keeps the stretched image's soft stroke edges this many px around its ink
LENGTH_SLACK = 4.0  # a reading of the --length wanted is taken if it scores within this (log) of the best
REJECT = 0.5  # a run whose top probability is below this is not read as a digit: "?"
DIGITS = [str(d) for d in range(10)]


class NoNumber(image_io.NoDigit):
    """No ink that could be a number: a blank page."""


@dataclass
class Candidate:
    line: int
    start: int  # the run of atoms [start, stop) in its line
    stop: int
    box: tuple  # (x, y, w, h) in the original image's pixels
    width: float  # the run's ink, in line heights
    height: float
    cut: float  # it begins where a piece was cut: that piece's width, in line heights (0: no cut)
    gaps: float  # paper between its pieces (_gaps)
    index: int = 0  # row of Layout.inputs

    @property
    def prior(self):
        """Log-prior of this run being one digit, added to its log-probability: a digit is about as tall as
        its line and rarely wider than tall, so a half-height mark (a 5's cap alone) and a run two digits
        wide both cost; so do a cut through ink and paper between pieces."""
        cost = WIDE_COST * max(0.0, self.width - WIDEST) + SHORT_COST * (self.height < SHORT)
        cut = 0.0 if not self.cut else CUT_COST if self.cut < PAIR else PAIR_CUT_COST
        return -(cost + cut + GAP_COST * self.gaps)


@dataclass
class Layout:
    """What one image needs the model for: every candidate digit framed in `inputs`, and how they chain."""
    inputs: np.ndarray  # (M, 28, 28) uint8
    atoms: list  # atoms per line
    candidates: list = field(default_factory=list)
    lines: list = field(default_factory=list)  # per line, its image for the line reader and where it lies (if asked)
    geometry: tuple = None  # the working copy's (x scale, y scale, margin) against the original image


@dataclass
class Reading:
    text: str  # digits left to right, "?" for a run that is not one, lines joined by a space
    confidence: float  # the probability that the whole reading is right (see the module's docstring)
    digits: list  # (label, probability) per digit; label "?" for a rejected run
    boxes: list  # (x, y, w, h) per digit, original pixels
    review: list  # the reasons to look at it; empty when it reads cleanly


def load(path, invert="auto", for_line_reader=False):
    """A file's layout; raises ImageError (NoNumber for a blank page) with a one-line reason. A JPEG decodes
    at a reduced scale no smaller than WORK px."""
    return image_io.load_file(path, lambda gray: layout_of(gray, invert, for_line_reader=for_line_reader), WORK)


def decode(path, invert="auto", for_line_reader=False):
    """`load` for the batch pipeline: (layout, None) or (None, reason); never raises."""
    return image_io.quietly(load, path, invert, for_line_reader)


def layout_of(gray, invert="auto", max_width=MAX_WIDTH, min_prior=MIN_PRIOR, fine_step=FINE_STEP,
              for_line_reader=False):
    """Candidate digits of a 2-D uint8 image (any size, either polarity); `max_width` and `min_prior` choose
    the runs of atoms framed (line_candidates), `fine_step` how far apart cuts start in a piece wider than
    FINE_WIDE line heights (cut_atoms); `for_line_reader`: each line's image too (Layout.lines), about 0.5 ms
    of a tight photo's 15, so made only where a line reader will read it."""
    height, width = gray.shape
    if gray.shape == (image_io.SIZE, image_io.SIZE):  # a true MNIST digit reads as itself, as in predict
        framed = image_io._framed_digit(gray, invert)
        if framed is not None:
            return Layout(framed[None], [1], [Candidate(0, 0, 1, (0, 0, width, height), 0.0, 1.0, 0.0, 0.0)],
                          [], (1.0, 1.0, 0))  # read as predict reads it: no line reading
    stretched, labels, lines, geometry = cleaned_lines(gray, invert)
    layout = Layout(None, [], [], [], geometry)
    framed = []
    for number, line in enumerate(lines):
        tall = line_height(line)
        if for_line_reader:
            layout.lines.append(line_reader.line_image(stretched, labels, line, tall))
        atoms = cut_atoms(line, labels, fine_step)
        layout.atoms.append(len(atoms))
        candidates = line_candidates(number, atoms, tall, labels, stretched, geometry, max_width, min_prior)
        for candidate, pixels in candidates:
            candidate.index = len(framed)
            framed.append(pixels)
            layout.candidates.append(candidate)
    if not framed:
        raise NoNumber("no digits found (a blank page?)")
    layout.inputs = np.stack(framed)
    return layout


def cleaned_lines(gray, invert="auto"):
    """Steps 1-3 of the module's docstring for a 2-D uint8 image: (the stretched ink, the component labels,
    the lines of pieces, the working copy's geometry); NoNumber for a blank page."""
    height, width = gray.shape
    work, crop, geometry = image_io.working_copy(gray, work_size(width, height))
    ink = image_io.ink_map(work, invert, crop)
    found = image_io.ink_mask(ink)
    if found is None:
        raise NoNumber("no digits found (a blank page?)")
    mask, denoised = found
    labels, stats = image_io.components(mask, denoised)
    pieces = [dict(s, label=label) for label, s in stats.items() if not image_io.is_line(s, mask.shape)]
    pieces = without_frames(pieces, mask, labels)
    heaviest = max((p["mass"] for p in pieces), default=0)
    pieces = [p for p in pieces if p["mass"] >= SPECK * heaviest]
    if not pieces:
        raise NoNumber("no digits found (a blank page?)")
    keep = np.isin(labels, [p["label"] for p in pieces])
    stretched = image_io.stretch(ink, keep)
    return stretched, labels, group_lines(pieces), geometry


def line_images(gray, invert="auto"):
    """Each line's image for the line reader (mnist_predict.lines.line_image), top to bottom: what
    `mnist-job train-lines` trains it on."""
    stretched, labels, lines, _ = cleaned_lines(gray, invert)
    return [line_reader.line_image(stretched, labels, line, line_height(line))[0] for line in lines]


def work_size(width, height):
    """The working copy's longest side: WORK for a square image, longer for a wide one, so that the short side
    keeps about WORK / 1.5 px (a line of digits, its height)."""
    aspect = max(width, height) / max(1, min(width, height))
    return int(min(MAX_WORK, max(WORK, WORK * aspect / 1.5)))


def without_frames(pieces, mask, labels):
    """The pieces less those of a box drawn around the number (is_frame). A photo's thin box breaks into
    pieces a pixel or two apart, so the box is found among the pieces of the mask grown by FRAME_GAP px."""
    if not any(p["area"] < FRAME_DENSITY * (p["bottom"] - p["top"]) * (p["right"] - p["left"]) for p in pieces):
        return pieces
    grown = image_io.rank_filter(mask, 2 * FRAME_GAP + 1, np.maximum)
    grown_labels, stats = image_io.components(grown, grown.astype(np.float32))
    grown_pieces = [dict(s, label=label) for label, s in stats.items()]
    frames = {p["label"] for p in grown_pieces if is_frame(p, grown_pieces, grown_labels)}
    if not frames:
        return pieces
    return [p for p in pieces if grown_labels[p["top"], int(np.argmax(labels[p["top"]] == p["label"]))] not in frames]


def is_frame(piece, pieces, labels):
    """Whether `piece` is a box around digits: its ink lies along the edges of its bounding box and the box
    holds another piece at least a third as tall. A 0 holds no such piece, and a digit that touches the box
    puts ink inside it, so the box stays and is read (a digit is never dropped)."""
    top, bottom, left, right = piece["top"], piece["bottom"], piece["left"], piece["right"]
    if not any(p is not piece and p["top"] >= top and p["bottom"] <= bottom and p["left"] >= left
               and p["right"] <= right and 3 * (p["bottom"] - p["top"]) >= bottom - top for p in pieces):
        return False
    region = labels[top:bottom, left:right] == piece["label"]
    border = max(1, int(FRAME_BORDER * min(bottom - top, right - left)))
    core = int(region[border:-border, border:-border].sum())
    return core <= (1 - FRAME_SHARE) * int(region.sum())


def group_lines(pieces):
    """Pieces grouped into lines of text, top to bottom, each left to right.

    A line is a chain: left to right, a digit-sized piece joins the line whose last piece it overlaps most in
    height (at least 40% of the smaller), so a tilted photo or a wandering hand still makes one line. Smaller
    pieces (a 5's cap, a dot) then join the line of the nearest piece they overlap in height; a small mark
    that overlaps none is not part of any number."""
    tallest = max(p["bottom"] - p["top"] for p in pieces)
    big = sorted((p for p in pieces if p["bottom"] - p["top"] >= 0.5 * tallest), key=lambda p: p["left"])
    small = [p for p in pieces if p["bottom"] - p["top"] < 0.5 * tallest]
    lines = []
    for piece in big:
        best, overlap = None, 0.0
        for line in lines:
            share = _height_overlap(line[-1], piece)
            if share > overlap:
                best, overlap = line, share
        if best is not None and overlap >= 0.4:
            best.append(piece)
        else:
            lines.append([piece])
    for piece in small:
        near = [(abs((q["left"] + q["right"]) - (piece["left"] + piece["right"])), k) for k, line in enumerate(lines)
                for q in line if _height_overlap(q, piece, of_second=True) >= 0.5]
        if near:
            lines[min(near)[1]].append(piece)
    return [sorted(line, key=lambda p: (p["left"] + p["right"]) / 2)
            for line in sorted(lines, key=lambda line: np.mean([(p["top"] + p["bottom"]) / 2 for p in line]))]


def _height_overlap(a, b, of_second=False):
    """The rows a and b share, as a share of the smaller height (or of b's)."""
    shared = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    base = b["bottom"] - b["top"] if of_second else min(a["bottom"] - a["top"], b["bottom"] - b["top"])
    return max(0.0, shared) / max(1, base)


def line_height(line):
    """The height of a digit in this line: the tallest pieces' (a 1 and a 7 are as tall as an 8)."""
    return float(max(2, np.percentile([p["bottom"] - p["top"] for p in line], 75)))


def cut_atoms(line, labels, fine_step=FINE_STEP):
    """The line's atoms, left to right: one per piece, or, for a piece wider than a digit (touching
    digits), one per stretch between the cuts through it.

    A cut is a path from the piece's top to its bottom that crosses as little ink as it can, moving at
    most one pixel sideways per row (the shortest-path cuts of handwritten-number readers): it follows the
    gap between slanted digits where a straight cut would slice one. Cuts start every STEP line heights
    (`fine_step` in a piece wider than FINE_WIDE), more of them than there are digits, for the search to
    join up again; cuts that cross one another or repeat one are dropped, and a sliver between two cuts
    joins its neighbour."""
    height = line_height(line)
    atoms = []
    for piece in line:
        top, bottom, left, right, label = piece["top"], piece["bottom"], piece["left"], piece["right"], piece["label"]
        region = labels[top:bottom, left:right] == label
        edges = [np.zeros(bottom - top, np.int32)]
        if right - left > WIDE * height and bottom - top > 0.6 * height:  # not a dash or an underline
            reach = max(2, int(0.35 * height))
            # each start gives the path of least ink within reach, and one that keeps nearer its column
            step = fine_step if right - left > FINE_WIDE * height else STEP
            paths = sorted(seams(region, [(column, stiffness) for column in cut_columns(region, height, step)
                                          for stiffness in (0.05, 0.5)], reach), key=lambda path: path.mean())
            for path in paths:
                # left to right, each cut wholly right of the one before (cuts that cross make atoms of
                # scraps) and not the same cut again
                if (path > edges[-1]).all() and np.abs(path - edges[-1]).mean() >= 0.08 * height:
                    edges.append(path)
        edges.append(np.full(bottom - top, right - left, np.int32))
        edges[-2] = np.minimum(edges[-2], right - left)
        columns = np.arange(right - left)[None, :]
        ink = [int((region & (columns >= lo[:, None]) & (columns < hi[:, None])).sum())
               for lo, hi in zip(edges, edges[1:])]
        # a sliver between two cuts is no atom: its cut goes, and the sliver joins its neighbour
        while len(ink) > 1 and min(ink) < MIN_ATOM * height ** 2:
            k = int(np.argmin(ink))
            drop = k if k == len(ink) - 1 or (k > 0 and ink[k - 1] <= ink[k + 1]) else k + 1
            del edges[drop]
            ink[drop - 1:drop + 1] = [ink[drop - 1] + ink[drop]]
        for lo, hi in zip(edges, edges[1:]):
            inside = region & (columns >= lo[:, None]) & (columns < hi[:, None])
            rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            box = (left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1)
            ink = inside[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            atoms.append({"label": label, "piece_width": (right - left) / height, "box": box, "ink": ink,
                          **_soft_edges(ink, box, labels.shape)})
    return atoms


def _soft_edges(ink, box, shape):
    """{"grown": the atom's ink grown by SOFT px, "grown_at": its (x, y)}: where a candidate holding the atom
    takes the stretched image's soft stroke edges from. Grown once per atom, not once per candidate: growing
    a union of atoms is the union of their growths."""
    x0, y0, x1, y1 = box
    gx0, gy0 = max(0, x0 - SOFT), max(0, y0 - SOFT)
    around = np.zeros((min(shape[0], y1 + SOFT) - gy0, min(shape[1], x1 + SOFT) - gx0), bool)
    around[y0 - gy0:y1 - gy0, x0 - gx0:x1 - gx0] = ink
    return {"grown": image_io.rank_filter(around, 2 * SOFT + 1, np.maximum), "grown_at": (gx0, gy0)}


def cut_columns(region, height, step):
    """Where cuts through a piece start: every `step` line heights across it, away from its ends."""
    width = region.shape[1]
    margin = max(1, int(0.2 * height))
    return list(range(margin, width - margin + 1, max(1, int(step * height))))


def seams(region, starts, reach):
    """For each (column, stiffness) of `starts`, the column per row of the path from top to bottom within
    `reach` px of `column` (and inside the piece's inner columns) that crosses the least ink; each row costs
    `stiffness` more at `reach` px from the column than on it, and a step sideways DIAGONAL more than one
    straight down (else the path slips through a digit's waist, between an 8's loops). All paths in one
    pass of dynamic programming down the rows; of equal costs, the leftmost step and end win."""
    rows, width = region.shape
    offsets = np.arange(-reach, reach + 1)
    columns = np.array([column for column, _ in starts])[:, None]
    xs = columns + offsets[None, :]  # (paths, window)
    inside = (xs >= 1) & (xs < width - 1)
    stiffness = np.array([stiffness for _, stiffness in starts])[:, None]
    cost = region[:, np.clip(xs, 0, width - 1)].astype(np.float32) + stiffness * np.abs(offsets)[None, :] / reach
    cost[:, ~inside] = np.inf
    total = cost[0].copy()
    steps = np.zeros(cost.shape, np.int8)
    from_left, from_right = np.full(total.shape, np.inf), np.full(total.shape, np.inf)
    for y in range(1, rows):
        # steps[y]: 0, 1, 2 for arriving from the left, straight above, the right; of equal costs the first
        # wins (strict comparisons in that order)
        sideways = total + DIAGONAL
        from_left[:, 1:] = sideways[:, :-1]
        from_right[:, :-1] = sideways[:, 1:]
        steps[y] = total < from_left
        best = np.minimum(total, from_left)
        steps[y][from_right < best] = 2
        total = cost[y] + np.minimum(best, from_right)
    end = total.argmin(axis=1)
    path = np.zeros((len(starts), rows), np.int64)
    path[:, -1] = end
    every = np.arange(len(starts))
    for y in range(rows - 1, 0, -1):
        path[:, y - 1] = path[:, y] + steps[y, every, path[:, y]] - 1
    out = np.take_along_axis(xs, path, axis=1).astype(np.int32)
    out[~inside.any(axis=1)] = columns[~inside.any(axis=1)]  # no inner column in reach: straight down
    return list(out)


def line_candidates(number, atoms, height, labels, stretched, geometry, max_width=MAX_WIDTH, min_prior=MIN_PRIOR):
    """(Candidate, 28x28 framed pixels) for every run of atoms that could be one digit: each atom, and each
    longer run no wider than `max_width` line heights whose log-prior is at least `min_prior`."""
    for start in range(len(atoms)):
        for stop in range(start + 1, min(start + MAX_ATOMS, len(atoms)) + 1):
            run = atoms[start:stop]
            left, top = min(a["box"][0] for a in run), min(a["box"][1] for a in run)
            right, bottom = max(a["box"][2] for a in run), max(a["box"][3] for a in run)  # each atom's box is tight
            if stop - start > 1 and right - left > max_width * height:
                break
            cut = atoms[start]["piece_width"] if start > 0 and atoms[start - 1]["label"] == run[0]["label"] else 0.0
            box = (left, top, right - left, bottom - top)
            candidate = Candidate(number, start, stop, _original_box(box, geometry), box[2] / height, box[3] / height,
                                  cut, _gaps(run, height))
            if stop - start > 1 and candidate.prior < min_prior:
                continue
            pixels = _frame_run(run, box, labels, stretched)
            if pixels is not None:
                yield candidate, pixels


def _gaps(run, height):
    """How much paper the run spans between its pieces, as a share (up to 1 each) of GAP line heights: the
    pieces of one digit (a 5's cap, a broken 4) overlap or touch, and two digits have paper between them.
    Atoms cut from one piece are one piece here: the paper between them is inside a digit (a 4's open top)."""
    extents = {}
    for atom in run:
        left, _, right, _ = atom["box"]
        low, high = extents.get(atom["label"], (left, right))
        extents[atom["label"]] = (min(low, left), max(high, right))
    total, reach = 0.0, None
    for left, right in sorted(extents.values()):
        if reach is not None and left > reach:
            total += min(1.0, (left - reach) / (GAP * height))
        reach = right if reach is None else max(reach, right)
    return total


def _frame_run(run, box, labels, stretched):
    """The run's ink with its soft edges, but not its neighbours' ink, framed as images.frame frames a digit;
    `box` (x, y, w, h) holds the run's atoms."""
    left, top, width, height = box
    x0, y0 = max(0, left - SOFT), max(0, top - SOFT)
    x1, y1 = min(labels.shape[1], left + width + SOFT), min(labels.shape[0], top + height + SOFT)
    window = labels[y0:y1, x0:x1]
    core = np.zeros(window.shape, bool)
    grown = np.zeros(window.shape, bool)
    for atom in run:
        ax0, ay0, ax1, ay1 = atom["box"]
        core[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] |= atom["ink"]
        (gx, gy), soft = atom["grown_at"], atom["grown"]
        grown[gy - y0:gy - y0 + soft.shape[0], gx - x0:gx - x0 + soft.shape[1]] |= soft
    grown &= ~((window > 0) & ~core)
    digit = np.where(grown, stretched[y0:y1, x0:x1], 0)
    try:
        return image_io.frame(digit)
    except image_io.NoDigit:
        return None


def _original_box(box, geometry):
    x, y, w, h = box
    sx, sy, margin = geometry
    left, top = (x - margin) / sx, (y - margin) / sy
    right, bottom = (x + w - margin) / sx, (y + h - margin) / sy
    return (int(math.floor(left)), int(math.floor(top)), int(math.ceil(right) - math.floor(left)),
            int(math.ceil(bottom) - math.floor(top)))


def choose(layout, probabilities, length=None):
    """The reading: for each line, the chain of candidates with the highest joint log-score, for every digit
    count; then the lines' counts combined, preferring a total within `length` (min, max).

    The confidence is the product of the digits' top probabilities (each digit right, given the cuts) times
    the share of the weight of every chain the search considered that reads the same text (the cuts right,
    or wrong in a way that does not change the number): a number that reads almost as well cut another way
    as another number is not a sure reading, however sure each digit is."""
    probabilities = np.asarray(probabilities, np.float64)
    top = probabilities.max(axis=1)
    labels = probabilities.argmax(axis=1)
    total = {0: (0.0, [], 0.0)}  # digit count -> (best log-score, its chains per line, log-sum over all chains)
    for line, atoms in enumerate(layout.atoms):
        combined = {}
        for k1, (s1, c1, z1) in total.items():
            for k2, (s2, c2, z2) in _line_table(layout, line, atoms, top).items():
                best, chains, z = combined.get(k1 + k2, (-math.inf, None, -math.inf))
                if s1 + s2 > best:
                    best, chains = s1 + s2, c1 + [c2]
                combined[k1 + k2] = (best, chains, float(np.logaddexp(z, z1 + z2)))
        total = combined
    fits = {k: v for k, v in total.items() if length is None or length[0] <= k <= length[1]}
    best = max(total.values(), key=lambda v: v[0])
    if not fits or max(v[0] for v in fits.values()) < best[0] - LENGTH_SLACK:
        fits = total  # no reading of that length comes close: the best one, flagged for its count
    _, lines, _ = max(fits.values(), key=lambda v: v[0])
    everything = float(np.logaddexp.reduce([z for _, _, z in fits.values()]))
    names = [DIGITS[label] if p >= REJECT else "?" for label, p in zip(labels.tolist(), top.tolist())]
    texts, digits, boxes = [], [], []
    same = 0.0  # log-weight of the chains that read the same text, cut one way or another
    for line, chain in enumerate(lines):
        text = "".join(names[c.index] for c in chain)
        same += _forced_weight(layout, line, layout.atoms[line], top, names, text)
        digits += [(names[c.index], float(top[c.index])) for c in chain]
        boxes += [c.box for c in chain]
        texts.append(text)
    confidence = math.exp(min(0.0, same - everything)) * math.prod(p for _, p in digits)
    review = ["not a digit"] if "?" in "".join(texts) else []
    return Reading(" ".join(texts), confidence, digits, boxes, review + _count_review(len(digits), length))


def _count_review(count, length):
    """The review reason for a reading of `count` digits outside `length` (min, max), as a list."""
    if length is None or length[0] <= count <= length[1]:
        return []
    wanted = f"{length[0]}" if length[0] == length[1] else f"{length[0]}-{length[1]}"
    return [f"{count} digits, not {wanted}"]


def _line_table(layout, line, atoms, top):
    """{digit count: (log-score, candidates, log-sum of every chain's score)} of the best chain through this
    line's atoms, and of all of them (the forward algorithm's sum beside the Viterbi maximum)."""
    ending = [dict() for _ in range(atoms + 1)]  # ending[j][k]: chains of k digits over atoms [0, j)
    ending[0][0] = (0.0, [], 0.0)
    by_stop = {}
    for candidate in layout.candidates:
        if candidate.line == line:
            by_stop.setdefault(candidate.stop, []).append(candidate)
    for stop in range(1, atoms + 1):
        for candidate in by_stop.get(stop, []):
            score = math.log(max(float(top[candidate.index]), 1e-12)) + candidate.prior
            for k, (s, chain, z) in ending[candidate.start].items():
                best, chosen, total = ending[stop].get(k + 1, (-math.inf, None, -math.inf))
                if s + score > best:
                    best, chosen = s + score, chain + [candidate]
                ending[stop][k + 1] = (best, chosen, float(np.logaddexp(total, z + score)))
    return ending[atoms] or {0: (0.0, [], 0.0)}


def _forced_weight(layout, line, atoms, top, names, text):
    """Log-sum of the scores of the chains through the line that read `text` (a forced alignment)."""
    weight = [dict() for _ in range(atoms + 1)]  # weight[j][m]: chains over atoms [0, j) reading text[:m]
    weight[0][0] = 0.0
    for candidate in sorted((c for c in layout.candidates if c.line == line), key=lambda c: c.stop):
        score = math.log(max(float(top[candidate.index]), 1e-12)) + candidate.prior
        for m, w in list(weight[candidate.start].items()):
            if m < len(text) and names[candidate.index] == text[m]:
                weight[candidate.stop][m + 1] = float(np.logaddexp(weight[candidate.stop].get(m + 1, -math.inf),
                                                                   w + score))
    return weight[atoms].get(len(text), -math.inf)


def with_line_reading(reading, layout, probabilities, line_probabilities, length=None, calibration=None, line=None):
    """The search's `reading` weighed against the line reader's (mnist_predict.lines), whose outputs
    `line_probabilities` are one per line of the layout.

    Where the two read the same text, the reading stands, as sure as the less sure of the two: both learned
    from the same digits and err alike (every reading bench/numbers.py found accepted and wrong, both read
    so), so agreeing is no second opinion. Where they differ, the row is flagged, and the text
    is the one with the higher confidence, each bounded by what the other reader says: two different texts
    cannot both be right, so a text is right with a probability of at most 1 minus the other's. The line
    reader's confidence in a text is the probability its model gives that text (every path that reads it).
    A text of the line reader's gets its digits and boxes from the chain of candidates that reads it best, or,
    where the cuts hold none, from the columns it was read in. The line reader may read "?" (a letter standing
    in the number) where the search reads a digit, and the search "?" where the line reader reads a digit
    (most often touching digits cut badly, not a letter: on bench/numbers.py the line reader was right in 74 of
    the 118 rows where the two differed so, the search in 8): the texts differ, the row is flagged, and the
    surer text is given, as for any two texts.

    With the export's `calibration` (manifest.json's reading_calibration), the confidence of the text given
    is the probability fitted from both readers' confidences (mnist_predict.reading_confidence) instead of
    these bounds; which text is given stays the same. `line` is line_reading(line_probabilities), where the
    caller has it already."""
    if not layout.lines or len(line_probabilities) != len(layout.lines):
        return reading
    decoded, text, own = line_reading(line_probabilities) if line is None else line
    if text == reading.text:
        return replace(reading, confidence=reading_confidence.agreed(reading.confidence, own, calibration))
    review = [f"the line reader reads {text or 'nothing'}"]
    search_confidence, line_confidence = min(reading.confidence, 1 - own), min(own, 1 - reading.confidence)
    if not all(t for t, _, _ in decoded) or line_confidence <= search_confidence:
        confidence = reading_confidence.differing(reading.confidence, own, False, calibration)
        return Reading(reading.text, confidence, reading.digits, reading.boxes, reading.review + review)
    digits, boxes = [], []
    for line, ((line_text, _, spans), p) in enumerate(zip(decoded, line_probabilities)):
        chain = _forced_chain(layout, line, np.asarray(probabilities), line_text)
        if chain is not None:
            digits += [(d, _digit_probability(probabilities[c.index], d)) for d, c in zip(line_text, chain)]
            boxes += [c.box for c in chain]
        else:
            digits += [(d, float(np.asarray(p)[a:b + 1, line_reader.label(d)].max()))
                       for d, (a, b) in zip(line_text, spans)]
            boxes += _span_boxes(layout, line, spans)
    letters = ["not a digit"] if "?" in text else []
    return Reading(text, reading_confidence.differing(own, reading.confidence, True, calibration), digits, boxes,
                   letters + _count_review(len(digits), length) + [f"the digit search reads {reading.text}"])


def line_reading(line_probabilities):
    """The line reader's reading of a layout's lines (one output each): (each line's lines.decode, the text
    with lines joined by a space, the probability its model gives that text)."""
    decoded = [line_reader.decode(p) for p in line_probabilities]
    own = math.prod(line_reader.text_probability(p, t) for p, (t, _, _) in zip(line_probabilities, decoded))
    return decoded, " ".join(t for t, _, _ in decoded), own


def _digit_probability(probabilities, char):
    """The digit model's probability of `char` for one candidate; for "?" (not a digit), its top probability,
    as the search gives a run it reads as "?"."""
    return float(np.max(probabilities) if char == "?" else probabilities[int(char)])


def _forced_chain(layout, line, probabilities, text):
    """The chain of the line's candidates that reads `text` with the highest score (a forced Viterbi
    alignment), or None."""
    best = [dict() for _ in range(layout.atoms[line] + 1)]  # best[j][m]: (score, chain) over atoms [0, j)
    best[0][0] = (0.0, [])
    for candidate in sorted((c for c in layout.candidates if c.line == line), key=lambda c: c.stop):
        for m, (score, chain) in list(best[candidate.start].items()):
            if m < len(text):
                # "?" is read where the digit model is unsure of every digit
                p = probabilities[candidate.index]
                fit = 1 - float(p.max()) if text[m] == "?" else float(p[int(text[m])])
                total = score + math.log(max(fit, 1e-12)) + candidate.prior
                if total > best[candidate.stop].get(m + 1, (-math.inf, None))[0]:
                    best[candidate.stop][m + 1] = (total, chain + [candidate])
    found = best[layout.atoms[line]].get(len(text))
    return found[1] if found else None


def _span_boxes(layout, line, spans):
    """Boxes of the digits the line reader read in these column spans, in the original image's pixels: the
    ink from halfway to the previous digit's columns to halfway to the next."""
    image, (x0, y0, scale) = layout.lines[line]
    rows = np.flatnonzero(image.any(axis=1))
    edges = [0] + [round((a[1] + b[0] + 1) / 2 * line_reader.STRIDE) for a, b in zip(spans, spans[1:])] + \
        [image.shape[1]]
    boxes = []
    for lo, hi in zip(edges, edges[1:]):
        part = image[:, lo:hi]
        columns, inked = np.flatnonzero(part.any(axis=0)), np.flatnonzero(part.any(axis=1))
        if len(columns):
            lo, hi = lo + columns[0], lo + columns[-1] + 1
            first, last = inked[0], inked[-1] + 1
        else:
            first, last = rows[0], rows[-1] + 1
        boxes.append(_original_box((x0 + lo / scale, y0 + first / scale, (hi - lo) / scale, (last - first) / scale),
                                   layout.geometry))
    return boxes


def parse_length(text):
    """'6' -> (6, 6), '4-8' -> (4, 8); ValueError for anything else."""
    try:
        low, _, high = str(text).partition("-")
        low, high = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--length must be N or MIN-MAX, e.g. 6 or 4-8, got {text!r}") from None
    if not 1 <= low <= high:
        raise ValueError(f"--length MIN-MAX needs 1 <= MIN <= MAX, got {text}")
    return low, high
