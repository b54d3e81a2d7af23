// mnist_predict.numbers in JavaScript: read the whole number in an image, with the same cuts, candidates
// and search as `mnist-predict read` (read deploy/mnist_predict/numbers.py's docstring for the why of each
// step). layoutOf() cuts a grayscale image into candidate digits, framed exactly as preprocess.js frames one
// digit; the page runs the model on layout.inputs; choose() picks the reading. Where the export has a line
// reader, layoutOf(gray, true) makes each line's image too (lines.js), the page runs lines.onnx on each, and
// withLineReading() weighs its reading against choose()'s. tests/test_web.py compares the candidates, boxes
// and line images with Python's pixel by pixel, and the readings.
//
// Pure functions on {width, height, data}; no DOM, so node runs it too (tests/web/numbers_cli.mjs).

import {
  NoDigit, SIZE, WORK, components, frame, framedDigit, inkMap, inkMask, isLine, percentileSorted, rankFilter,
  stretch, workingCopy,
} from "./preprocess.js";
import * as lineReader from "./lines.js";

const MAX_WORK = 3 * WORK;
const MAX_ATOMS = 6;
const MAX_WIDTH = 1.3;
const MIN_PRIOR = -5.0;
const SPECK = 0.03;
const FRAME_BORDER = 0.15, FRAME_SHARE = 0.9;
const FRAME_GAP = 2;
const FRAME_DENSITY = 0.1;
const WIDE = 0.7;
const DIAGONAL = 0.3;
const STEP = 0.25;
const FINE_STEP = 0.12, FINE_WIDE = 1.4;
const MIN_ATOM = 0.01;
const WIDEST = 1.1, WIDE_COST = 8.0;
const SHORT = 0.55, SHORT_COST = 3.0;
const CUT_COST = 3.0, PAIR = 1.15, PAIR_CUT_COST = 0.0;
const GAP = 0.05, GAP_COST = 3.0;
const SOFT = 2;
const LENGTH_SLACK = 4.0;
export const REJECT = 0.5;

export class NoNumber extends NoDigit {}

/** Log-prior of a candidate run being one digit (Candidate.prior in Python). */
function prior(c) {
  const cost = WIDE_COST * Math.max(0.0, c.width - WIDEST) + SHORT_COST * (c.height < SHORT ? 1 : 0);
  const cut = !c.cut ? 0.0 : c.cut < PAIR ? CUT_COST : PAIR_CUT_COST;
  return -(cost + cut + GAP_COST * c.gaps);
}

export function workSize(width, height) {
  const aspect = Math.max(width, height) / Math.max(1, Math.min(width, height));
  return Math.trunc(Math.min(MAX_WORK, Math.max(WORK, (WORK * aspect) / 1.5)));
}

/** {inputs: [Uint8Array(784)], atoms: [per line], candidates: [{line, start, stop, box, width, height, cut,
 * gaps, prior, index}], lines: [per line, lines.js lineImage's {image, place}, with forLineReader], geometry}:
 * every candidate digit of a grayscale image. Throws NoNumber for a blank page. */
export function layoutOf(gray, forLineReader = false) {
  const { width, height } = gray;
  if (width === SIZE && height === SIZE) {
    const framed = framedDigit(gray.data);
    if (framed) {
      const c = { line: 0, start: 0, stop: 1, box: [0, 0, width, height], width: 0.0, height: 1.0, cut: 0.0, gaps: 0.0, index: 0 };
      c.prior = prior(c);
      return { inputs: [framed], atoms: [1], candidates: [c], lines: [], geometry: { sx: 1.0, sy: 1.0, margin: 0 } };
    }
  }
  const { work, crop, geometry } = workingCopy(gray, workSize(width, height));
  const ink = inkMap(work, crop);
  const found = inkMask(ink);
  if (!found) throw new NoNumber("no digits found (a blank page?)");
  const { labels, stats } = components(found.mask, found.denoised);
  let pieces = withoutFrames(stats.filter((s) => !isLine(s, ink.width, ink.height)), found.mask, labels);
  const heaviest = pieces.reduce((m, p) => Math.max(m, p.mass), 0);
  pieces = pieces.filter((p) => p.mass >= SPECK * heaviest);
  if (!pieces.length) throw new NoNumber("no digits found (a blank page?)");
  const kept = new Set(pieces.map((p) => p.label));
  const stretched = stretch(ink, { width: ink.width, height: ink.height, data: labels.map((l) => (kept.has(l) ? 1 : 0)) });
  const lab = { width: ink.width, height: ink.height, data: labels };
  const layout = { inputs: [], atoms: [], candidates: [], lines: [], geometry };
  groupLines(pieces).forEach((line, number) => {
    const tall = lineHeight(line);
    if (forLineReader) layout.lines.push(lineReader.lineImage(stretched, lab, line, tall));
    const atoms = cutAtoms(line, lab);
    layout.atoms.push(atoms.length);
    for (const [candidate, pixels] of lineCandidates(number, atoms, tall, lab, stretched, geometry)) {
      candidate.index = layout.inputs.length;
      layout.inputs.push(pixels);
      layout.candidates.push(candidate);
    }
  });
  if (!layout.inputs.length) throw new NoNumber("no digits found (a blank page?)");
  return layout;
}

/** numbers.without_frames: the pieces less those of a box around the number, found among the pieces of the
 * mask grown by FRAME_GAP px (a photo's thin box breaks into pieces). */
function withoutFrames(pieces, mask, labels) {
  if (!pieces.some((p) => p.area < FRAME_DENSITY * (p.bottom - p.top) * (p.right - p.left))) return pieces;
  const { width, height } = mask;
  const grown = rankFilter(mask, 2 * FRAME_GAP + 1, Math.max);
  const weight = { width, height, data: Float32Array.from(grown.data, (v) => (v ? 1 : 0)) };
  const { labels: grownLabels, stats } = components(grown, weight);
  const frames = new Set(stats.filter((p) => isFrame(p, stats, grownLabels, width)).map((p) => p.label));
  if (!frames.size) return pieces;
  return pieces.filter((p) => {
    let x = 0;
    while (labels[p.top * width + x] !== p.label) x++;
    return !frames.has(grownLabels[p.top * width + x]);
  });
}

/** numbers.is_frame: ink along the edges of its box, around another piece at least a third as tall. */
function isFrame(piece, pieces, labels, width) {
  const { top, bottom, left, right } = piece;
  const holds = pieces.some((p) => p !== piece && p.top >= top && p.bottom <= bottom && p.left >= left &&
    p.right <= right && 3 * (p.bottom - p.top) >= bottom - top);
  if (!holds) return false;
  const border = Math.max(1, Math.trunc(FRAME_BORDER * Math.min(bottom - top, right - left)));
  let all = 0, core = 0;
  for (let y = top; y < bottom; y++) {
    for (let x = left; x < right; x++) {
      if (labels[y * width + x] !== piece.label) continue;
      all++;
      if (y >= top + border && y < bottom - border && x >= left + border && x < right - border) core++;
    }
  }
  return core <= (1 - FRAME_SHARE) * all;
}

function heightOverlap(a, b, ofSecond = false) {
  const shared = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  const base = ofSecond ? b.bottom - b.top : Math.min(a.bottom - a.top, b.bottom - b.top);
  return Math.max(0.0, shared) / Math.max(1, base);
}

function groupLines(pieces) {
  const tallest = Math.max(...pieces.map((p) => p.bottom - p.top));
  const big = pieces.filter((p) => p.bottom - p.top >= 0.5 * tallest).sort((a, b) => a.left - b.left);
  const small = pieces.filter((p) => p.bottom - p.top < 0.5 * tallest);
  const lines = [];
  for (const piece of big) {
    let best = null, overlap = 0.0;
    for (const line of lines) {
      const share = heightOverlap(line.at(-1), piece);
      if (share > overlap) {
        best = line;
        overlap = share;
      }
    }
    if (best !== null && overlap >= 0.4) best.push(piece);
    else lines.push([piece]);
  }
  for (const piece of small) {
    let near = null; // [distance, line index], the smallest as Python's min() of tuples
    lines.forEach((line, k) => {
      for (const q of line) {
        if (heightOverlap(q, piece, true) < 0.5) continue;
        const d = Math.abs(q.left + q.right - (piece.left + piece.right));
        if (near === null || d < near[0] || (d === near[0] && k < near[1])) near = [d, k];
      }
    });
    if (near) lines[near[1]].push(piece);
  }
  const centre = (line) => line.reduce((sum, p) => sum + (p.top + p.bottom) / 2, 0) / line.length;
  return lines
    .map((line) => [centre(line), line])
    .sort((a, b) => a[0] - b[0])
    .map(([, line]) => line.sort((a, b) => (a.left + a.right) / 2 - (b.left + b.right) / 2));
}

function lineHeight(line) {
  const heights = Float64Array.from(line.map((p) => p.bottom - p.top)).sort();
  return Math.max(2, percentileSorted(heights, 75));
}

function cutAtoms(line, labels) {
  const height = lineHeight(line);
  const atoms = [];
  for (const piece of line) {
    const { top, bottom, left, right, label } = piece;
    const rows = bottom - top, width = right - left;
    const region = new Uint8Array(rows * width);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < width; x++) region[y * width + x] = labels.data[(top + y) * labels.width + left + x] === label ? 1 : 0;
    }
    let edges = [new Int32Array(rows)];
    if (width > WIDE * height && rows > 0.6 * height) {
      const reach = Math.max(2, Math.trunc(0.35 * height));
      const paths = [];
      const step = width > FINE_WIDE * height ? FINE_STEP : STEP;
      for (const column of cutColumns(width, height, step)) {
        for (const stiffness of [0.05, 0.5]) paths.push(seam(region, rows, width, column, reach, stiffness));
      }
      const means = paths.map((path) => path.reduce((sum, v) => sum + v, 0) / rows);
      const order = paths.map((_, i) => i).sort((a, b) => means[a] - means[b]);
      for (const i of order) {
        const path = paths[i], last = edges.at(-1);
        let right = true, distance = 0;
        for (let y = 0; y < rows; y++) {
          if (path[y] <= last[y]) right = false;
          distance += Math.abs(path[y] - last[y]);
        }
        if (right && distance / rows >= 0.08 * height) edges.push(path);
      }
    }
    edges.push(new Int32Array(rows).fill(width));
    edges[edges.length - 2] = edges.at(-2).map((v) => Math.min(v, width));
    const inkOf = (lo, hi) => {
      let n = 0;
      for (let y = 0; y < rows; y++) for (let x = lo[y]; x < hi[y]; x++) n += region[y * width + x];
      return n;
    };
    const ink = edges.slice(1).map((hi, k) => inkOf(edges[k], hi));
    while (ink.length > 1 && Math.min(...ink) < MIN_ATOM * height ** 2) {
      const k = ink.indexOf(Math.min(...ink));
      const drop = k === ink.length - 1 || (k > 0 && ink[k - 1] <= ink[k + 1]) ? k : k + 1;
      edges.splice(drop, 1);
      ink.splice(drop - 1, 2, ink[drop - 1] + ink[drop]);
    }
    for (let k = 0; k + 1 < edges.length; k++) {
      const lo = edges[k], hi = edges[k + 1];
      let x0 = Infinity, x1 = -1, y0 = Infinity, y1 = -1;
      for (let y = 0; y < rows; y++) {
        for (let x = Math.max(0, lo[y]); x < Math.min(width, hi[y]); x++) {
          if (!region[y * width + x]) continue;
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          y0 = Math.min(y0, y);
          y1 = Math.max(y1, y);
        }
      }
      atoms.push({ label, top, left, lo, hi, pieceWidth: width / height, box: [left + x0, top + y0, left + x1 + 1, top + y1 + 1] });
    }
  }
  return atoms;
}

function cutColumns(width, height, step) {
  const margin = Math.max(1, Math.trunc(0.2 * height)), every = Math.max(1, Math.trunc(step * height));
  const columns = [];
  for (let c = margin; c < width - margin + 1; c += every) columns.push(c);
  return columns;
}

function seam(region, rows, width, column, reach, stiffness) {
  const lo = Math.max(1, column - reach), hi = Math.min(width - 1, column + reach + 1);
  if (hi <= lo) return new Int32Array(rows).fill(column);
  const n = hi - lo;
  const total = new Float64Array(rows * n), step = new Int8Array(rows * n);
  const cost = (y, i) => region[y * width + lo + i] + (stiffness * Math.abs(lo + i - column)) / reach;
  for (let i = 0; i < n; i++) total[i] = cost(0, i);
  for (let y = 1; y < rows; y++) {
    for (let i = 0; i < n; i++) {
      // from the left, straight down, from the right: the first of equal costs, as numpy's argmin
      const options = [i > 0 ? total[(y - 1) * n + i - 1] + DIAGONAL : Infinity, total[(y - 1) * n + i],
        i < n - 1 ? total[(y - 1) * n + i + 1] + DIAGONAL : Infinity];
      let best = 0;
      if (options[1] < options[best]) best = 1;
      if (options[2] < options[best]) best = 2;
      step[y * n + i] = best - 1;
      total[y * n + i] = cost(y, i) + options[best];
    }
  }
  const path = new Int32Array(rows);
  let end = 0;
  for (let i = 1; i < n; i++) if (total[(rows - 1) * n + i] < total[(rows - 1) * n + end]) end = i;
  path[rows - 1] = end;
  for (let y = rows - 1; y > 0; y--) path[y - 1] = path[y] + step[y * n + path[y]];
  return path.map((v) => v + lo);
}

function* lineCandidates(number, atoms, height, labels, stretched, geometry) {
  for (let start = 0; start < atoms.length; start++) {
    for (let stop = start + 1; stop <= Math.min(start + MAX_ATOMS, atoms.length); stop++) {
      const run = atoms.slice(start, stop);
      const left = Math.min(...run.map((a) => a.box[0])), right = Math.max(...run.map((a) => a.box[2]));
      if (stop - start > 1 && right - left > MAX_WIDTH * height) break;
      const top = Math.min(...run.map((a) => a.box[1])), bottom = Math.max(...run.map((a) => a.box[3]));
      const box = [left, top, right - left, bottom - top]; // each atom's box is tight
      const cut = start > 0 && atoms[start - 1].label === run[0].label ? atoms[start].pieceWidth : 0.0;
      const c = { line: number, start, stop, box: originalBox(box, geometry), width: box[2] / height,
        height: box[3] / height, cut, gaps: gaps(run, height) };
      c.prior = prior(c);
      if (stop - start > 1 && c.prior < MIN_PRIOR) continue;
      const pixels = frameRun(run, box, labels, stretched);
      if (pixels) yield [c, pixels];
    }
  }
}

function gaps(run, height) {
  const extents = new Map();
  for (const atom of run) {
    const [left, , right] = atom.box;
    const [low, high] = extents.get(atom.label) ?? [left, right];
    extents.set(atom.label, [Math.min(low, left), Math.max(high, right)]);
  }
  let total = 0.0, reach = null;
  for (const [left, right] of [...extents.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1])) {
    if (reach !== null && left > reach) total += Math.min(1.0, (left - reach) / (GAP * height));
    reach = reach === null ? right : Math.max(reach, right);
  }
  return total;
}

function frameRun(run, [left, top, width, height], labels, stretched) {
  const x0 = Math.max(0, left - SOFT), y0 = Math.max(0, top - SOFT);
  const x1 = Math.min(labels.width, left + width + SOFT), y1 = Math.min(labels.height, top + height + SOFT);
  const w = x1 - x0, h = y1 - y0;
  const core = new Uint8Array(w * h);
  for (const atom of run) {
    const r0 = Math.max(atom.top, y0), r1 = Math.min(atom.top + atom.lo.length, y1);
    for (let r = r0; r < r1; r++) {
      const lo = atom.left + atom.lo[r - atom.top], hi = atom.left + atom.hi[r - atom.top];
      for (let x = Math.max(x0, lo); x < Math.min(x1, hi); x++) {
        if (labels.data[r * labels.width + x] === atom.label) core[(r - y0) * w + x - x0] = 1;
      }
    }
  }
  if (!core.some((v) => v)) return null;
  const grown = rankFilter({ width: w, height: h, data: core }, 2 * SOFT + 1, Math.max).data;
  const digit = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x, other = labels.data[(y + y0) * labels.width + x + x0] > 0 && !core[i];
      if (grown[i] && !other) digit[i] = stretched.data[(y + y0) * stretched.width + x + x0];
    }
  }
  try {
    return frame({ width: w, height: h, data: digit });
  } catch (error) {
    if (error instanceof NoDigit) return null;
    throw error;
  }
}

function originalBox([x, y, w, h], { sx, sy, margin }) {
  const left = (x - margin) / sx, top = (y - margin) / sy;
  const right = (x + w - margin) / sx, bottom = (y + h - margin) / sy;
  return [Math.floor(left), Math.floor(top), Math.ceil(right) - Math.floor(left), Math.ceil(bottom) - Math.floor(top)];
}

// ---- the search -------------------------------------------------------------------------------------

const { logaddexp } = lineReader;

/** The reading of a layout, given the model's probabilities (one array per input): {text, confidence,
 * digits: [[label, probability]], boxes: [[x, y, w, h]], review: [reasons], indices: the inputs read}. */
export function choose(layout, probabilities, length = null) {
  const top = probabilities.map((row) => Math.max(...row));
  const names = probabilities.map((row, i) => (top[i] >= REJECT ? String(row.indexOf(top[i])) : "?"));
  let total = new Map([[0, [0.0, [], 0.0]]]);
  layout.atoms.forEach((atoms, line) => {
    const combined = new Map();
    for (const [k1, [s1, c1, z1]] of total) {
      for (const [k2, [s2, c2, z2]] of lineTable(layout, line, atoms, top)) {
        let [best, chains, z] = combined.get(k1 + k2) ?? [-Infinity, null, -Infinity];
        if (s1 + s2 > best) {
          best = s1 + s2;
          chains = [...c1, c2];
        }
        combined.set(k1 + k2, [best, chains, logaddexp(z, z1 + z2)]);
      }
    }
    total = combined;
  });
  const firstBest = (map) => [...map.values()].reduce((b, v) => (b === null || v[0] > b[0] ? v : b), null);
  let fits = new Map([...total].filter(([k]) => length === null || (length[0] <= k && k <= length[1])));
  const best = firstBest(total);
  if (!fits.size || firstBest(fits)[0] < best[0] - LENGTH_SLACK) fits = total;
  const [, lines] = firstBest(fits);
  const everything = [...fits.values()].map((v) => v[2]).reduce((a, b) => logaddexp(a, b));
  const texts = [], digits = [], boxes = [], indices = [];
  let same = 0.0;
  lines.forEach((chain, line) => {
    const text = chain.map((c) => names[c.index]).join("");
    same += forcedWeight(layout, line, layout.atoms[line], top, names, text);
    for (const c of chain) {
      digits.push([names[c.index], top[c.index]]);
      boxes.push(c.box);
      indices.push(c.index);
    }
    texts.push(text);
  });
  let product = 1; // math.prod's order, then the share, as Python multiplies them
  for (const [, p] of digits) product *= p;
  const confidence = Math.exp(Math.min(0.0, same - everything)) * product;
  const review = texts.join("").includes("?") ? ["not a digit"] : [];
  return { text: texts.join(" "), confidence, digits, boxes, review: [...review, ...countReview(digits.length, length)], indices };
}

/** numbers._count_review: the review reason for a reading of `count` digits outside `length`, as a list. */
function countReview(count, length) {
  if (length === null || (length[0] <= count && count <= length[1])) return [];
  const wanted = length[0] === length[1] ? `${length[0]}` : `${length[0]}-${length[1]}`;
  return [`${count} digits, not ${wanted}`];
}

function byStop(layout, line) {
  return layout.candidates.filter((c) => c.line === line).sort((a, b) => a.stop - b.stop);
}

function lineTable(layout, line, atoms, top) {
  const ending = Array.from({ length: atoms + 1 }, () => new Map());
  ending[0].set(0, [0.0, [], 0.0]);
  for (const c of byStop(layout, line)) {
    const score = Math.log(Math.max(top[c.index], 1e-12)) + c.prior;
    for (const [k, [s, chain, z]] of ending[c.start]) {
      let [best, chosen, sum] = ending[c.stop].get(k + 1) ?? [-Infinity, null, -Infinity];
      if (s + score > best) {
        best = s + score;
        chosen = [...chain, c];
      }
      ending[c.stop].set(k + 1, [best, chosen, logaddexp(sum, z + score)]);
    }
  }
  return ending[atoms].size ? ending[atoms] : new Map([[0, [0.0, [], 0.0]]]);
}

function forcedWeight(layout, line, atoms, top, names, text) {
  const weight = Array.from({ length: atoms + 1 }, () => new Map());
  weight[0].set(0, 0.0);
  for (const c of byStop(layout, line)) {
    const score = Math.log(Math.max(top[c.index], 1e-12)) + c.prior;
    for (const [m, w] of [...weight[c.start]]) {
      if (m < text.length && names[c.index] === text[m]) {
        weight[c.stop].set(m + 1, logaddexp(weight[c.stop].get(m + 1) ?? -Infinity, w + score));
      }
    }
  }
  return weight[atoms].get(text.length) ?? -Infinity;
}

// ---- the line reader's reading, weighed ------------------------------------------------------------------

/** numbers.with_line_reading: the search's reading weighed against the line reader's, whose outputs
 * (lines.js cropped(), one per line of the layout) are lineProbabilities. */
export function withLineReading(reading, layout, probabilities, lineProbabilities, length = null, calibration = null) {
  if (!layout.lines.length || lineProbabilities.length !== layout.lines.length) return reading;
  const decoded = lineProbabilities.map((p) => lineReader.decode(p));
  const text = decoded.map(([t]) => t).join(" ");
  let own = 1;
  decoded.forEach(([t], line) => (own *= lineReader.textProbability(lineProbabilities[line], t)));
  if (text === reading.text) return { ...reading, confidence: agreed(reading.confidence, own, calibration) };
  const review = [`the line reader reads ${text || "nothing"}`];
  const searchConfidence = Math.min(reading.confidence, 1 - own), lineConfidence = Math.min(own, 1 - reading.confidence);
  if (!decoded.every(([t]) => t) || lineConfidence <= searchConfidence) {
    const confidence = differing(reading.confidence, own, false, calibration);
    return { ...reading, confidence, review: [...reading.review, ...review] };
  }
  const digits = [], boxes = [], indices = [];
  decoded.forEach(([lineText, , spans], line) => {
    const chain = forcedChain(layout, line, probabilities, lineText);
    if (chain) {
      chain.forEach((c, k) => {
        const p = probabilities[c.index];
        digits.push([lineText[k], lineText[k] === "?" ? Math.max(...p) : p[Number(lineText[k])]]);
        boxes.push(c.box);
        indices.push(c.index);
      });
    } else {
      const p = lineProbabilities[line];
      spans.forEach(([a, b], k) => {
        let best = -Infinity;
        for (let column = a; column <= b; column++) best = Math.max(best, p[column][lineReader.label(lineText[k])]);
        digits.push([lineText[k], best]);
      });
      boxes.push(...spanBoxes(layout, line, spans));
    }
  });
  const letters = text.includes("?") ? ["not a digit"] : [];
  return {
    text, confidence: differing(own, reading.confidence, true, calibration), digits, boxes, indices,
    review: [...letters, ...countReview(digits.length, length), `the digit search reads ${reading.text}`],
  };
}

// mnist_predict.reading_confidence: the confidence of a weighed reading, fitted at export (the manifest's
// reading_calibration) or, without it, bounded by the two readers' confidences.
const CLIP = 1e-6;

function logit(p) {
  const q = Math.min(Math.max(p, CLIP), 1 - CLIP);
  return Math.log(q / (1 - q));
}

function sigmoid(z) {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

function weighed(weights, features) {
  let z = 0;
  weights.forEach((w, k) => (z += w * features[k]));
  return sigmoid(z);
}

function agreed(search, line, calibration) {
  const weights = calibration?.agree;
  return weights ? weighed(weights, [1.0, logit(search), logit(line)]) : Math.min(search, line);
}

function differing(given, other, lineGiven, calibration) {
  const weights = calibration?.differ;
  return weights ? weighed(weights, [1.0, logit(given), logit(other), lineGiven ? 1.0 : 0.0]) : Math.min(given, 1 - other);
}

/** numbers._forced_chain: the line's chain of candidates that reads `text` with the highest score, or null. */
function forcedChain(layout, line, probabilities, text) {
  const best = Array.from({ length: layout.atoms[line] + 1 }, () => new Map());
  best[0].set(0, [0.0, []]);
  for (const c of byStop(layout, line)) {
    for (const [m, [score, chain]] of [...best[c.start]]) {
      if (m >= text.length) continue;
      const p = probabilities[c.index];
      const fit = text[m] === "?" ? 1 - Math.max(...p) : p[Number(text[m])];
      const total = score + Math.log(Math.max(fit, 1e-12)) + c.prior;
      if (total > (best[c.stop].get(m + 1)?.[0] ?? -Infinity)) best[c.stop].set(m + 1, [total, [...chain, c]]);
    }
  }
  return best[layout.atoms[line]].get(text.length)?.[1] ?? null;
}

/** numbers._span_boxes: boxes of the characters read in these column spans, in the original image's pixels. */
function spanBoxes(layout, line, spans) {
  const { image, place: [x0, y0, scale] } = layout.lines[line];
  const inked = (lo, hi) => {  // [first row, last row, first column, last column] of image[:, lo:hi]'s ink, or null
    let found = null;
    for (let y = 0; y < image.height; y++) {
      for (let x = lo; x < Math.min(hi, image.width); x++) {
        if (!image.data[y * image.width + x]) continue;
        if (!found) found = [y, y, x, x];
        found = [found[0], y, Math.min(found[2], x), Math.max(found[3], x)];
      }
    }
    return found;
  };
  const all = inked(0, image.width);
  const edges = [0, ...spans.slice(1).map((b, k) => Math.round(((spans[k][1] + b[0] + 1) / 2) * lineReader.STRIDE)), image.width];
  const boxes = [];
  for (let k = 0; k + 1 < edges.length; k++) {
    let lo = edges[k], hi = edges[k + 1], first, last;
    const part = inked(lo, hi);
    if (part) {
      [lo, hi] = [part[2], part[3] + 1];
      [first, last] = [part[0], part[1] + 1];
    } else {
      [first, last] = [all[0], all[1] + 1];
    }
    boxes.push(originalBox([x0 + lo / scale, y0 + first / scale, (hi - lo) / scale, (last - first) / scale], layout.geometry));
  }
  return boxes;
}
