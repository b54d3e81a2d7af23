// mnist_predict.images in JavaScript: any decoded image to the 28x28 white-on-black digit the model wants.
//
// A line-by-line port of deploy/mnist_predict/images.py (read that file's docstring for the why of each
// step), so the page and `mnist-predict` give a file the same label. It implements all of it: grayscale and
// alpha compositing, polarity, the pass-through of true MNIST digits, background removal (closing at low
// resolution), thin-rule removal, Otsu's threshold, connected components, contrast stretch, and MNIST's
// framing (fit into 20x20, centre of mass at 14,14). Pillow's resampling (BOX, BILINEAR, BICUBIC, LANCZOS,
// reduce) and numpy's float32 arithmetic are reproduced exactly; tests/test_web.py compares the two ports
// pixel by pixel. What differs: the browser decodes the file (JPEGs at full size where Pillow decodes them
// at a reduced DCT scale, so a JPEG's 28x28 may differ by a few levels), and a few sums that numpy adds
// pairwise are added here in order, which can only move a decision that sits on its threshold.
//
// Pure functions on {width, height, data}; no DOM, so node runs it too (tests/web/preprocess_cli.mjs).

export const SIZE = 28;
const FIT = 20;
const CENTRE = 14.0;
export const MAX_PIXELS = 4096 * 4096;
export const WORK = 256;
const POLARITY = 64;
const PAPER_SIDE = 16;
const LOCAL_PAPER = 0.2, BROAD_PAPER = 0.8;
const TAIL = 0.1;
const MIN_SIDE = 96;
const MIN_CONTRAST = 0.2;
const MIN_SEPARATION = 9.0;
const BOX_EDGE = 0.9;
const KEEP_MASS = 0.08, BESIDE_HEIGHT = 0.6;
const f32 = Math.fround;
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255); // np.float32(v) / 255

export class NoDigit extends Error {}

// ---- decoding: RGBA (from a canvas) to Pillow's grayscale ---------------------------------------------

/** RGBA bytes to a 2-D uint8 image, as images.to_grayscale does: Pillow's L = (19595 R + 38470 G + 7471 B
 * + 0x8000) >> 16, and pixels that are not opaque composited onto a background that keeps the ink. */
export function toGrayscale(rgba, width, height) {
  const n = width * height;
  const gray = new Uint8Array(n);
  let translucent = false;
  for (let i = 0; i < n; i++) {
    const p = i * 4;
    gray[i] = (rgba[p] * 19595 + rgba[p + 1] * 38470 + rgba[p + 2] * 7471 + 0x8000) >> 16;
    if (rgba[p + 3] !== 255) translucent = true;
  }
  if (!translucent) return { width, height, data: gray };
  let weighted = 0, weights = 0;
  const alpha = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    alpha[i] = f32(rgba[i * 4 + 3] / 255);
    weighted += gray[i] * alpha[i];
    weights += alpha[i];
  }
  const background = weights > 0 && weighted / weights > 127 ? 0 : 255;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = roundHalfEven(f32(f32(gray[i] * alpha[i]) + f32(background * f32(1 - alpha[i]))));
  }
  return { width, height, data: out };
}

// ---- the pipeline, as images.prepare with --invert auto --resize mnist ---------------------------------

/**
 * A 2-D uint8 image to the model's (28*28) uint8 input; throws NoDigit when there is no ink. `mode` is
 * images.prepare's `resize` (the export's manifest.preprocess): "mnist" cleans and frames a digit, "stretch"
 * (Fashion-MNIST, trained on raw arrays) turns a light background dark and resizes to 28x28 as is.
 */
export function prepare(gray, mode = "mnist") {
  if (gray.width * gray.height > MAX_PIXELS) {
    throw new Error(`${gray.width}x${gray.height} exceeds the ${MAX_PIXELS.toLocaleString("en")}-pixel cap`);
  }
  if (mode === "stretch") {
    const data = hasLightBackground(gray) ? gray.data.map((v) => 255 - v) : gray.data;
    if (gray.width === SIZE && gray.height === SIZE) return Uint8Array.from(data);
    return resize({ width: gray.width, height: gray.height, data }, SIZE, SIZE, "lanczos", 3.0).data;
  }
  if (mode !== "mnist") throw new Error(`unknown preprocess ${JSON.stringify(mode)}`);
  if (gray.width === SIZE && gray.height === SIZE) {
    const framed = framedDigit(gray.data);
    if (framed) return framed;
  }
  return mnistNormalize(gray);
}

/** images.has_light_background, its border as numpy concatenates it (a 1-pixel-high image counts its row twice). */
export function hasLightBackground({ width, height, data }) {
  let light = 0, total = 0;
  const count = (v) => { light += v > 127; total++; };
  for (let x = 0; x < width; x++) { count(data[x]); count(data[(height - 1) * width + x]); }
  for (let y = 1; y < height - 1; y++) { count(data[y * width]); count(data[y * width + width - 1]); }
  return light > total / 2;
}

export function framedDigit(gray) {
  const inverted = gray.map((v) => 255 - v);
  for (const digit of [gray, inverted]) {
    const rowSums = new Float64Array(SIZE), colSums = new Float64Array(SIZE);
    let total = 0;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const v = digit[y * SIZE + x];
        rowSums[y] += v;
        colSums[x] += v;
        total += v;
      }
    }
    const rows = nonzeroIndices(rowSums), cols = nonzeroIndices(colSums);
    if (!rows.length || rows.at(-1) - rows[0] >= FIT + 1 || cols.at(-1) - cols[0] >= FIT + 1) continue;
    const centreY = dotIndex(rowSums) / total, centreX = dotIndex(colSums) / total;
    if (Math.abs(centreY - CENTRE) <= 1 && Math.abs(centreX - CENTRE) <= 1) return Uint8Array.from(digit);
  }
  return null;
}

export function mnistNormalize(gray) {
  const { work, crop } = workingCopy(gray);
  const ink = inkMap(work, crop);
  const mask = digitMask(ink);
  if (!mask) throw new NoDigit("no digit found");
  return frame(stretch(ink, mask));
}

/** The working copy, whether it is a crop, and its geometry {sx, sy, margin}: a working pixel (x, y) is
 * original pixel ((x - margin) / sx, (y - margin) / sy). */
export function workingCopy(gray, longest = WORK) {
  const { width, height } = gray;
  const scale = Math.min(longest / Math.max(height, width), Math.max(1.0, MIN_SIDE / Math.min(height, width)));
  let image = gray;
  if (scale < 1) {
    image = resize(gray, Math.max(1, roundHalfEven(width * scale)), Math.max(1, roundHalfEven(height * scale)),
      "box", 2.0);
  } else if (scale > 1) {
    image = resize(gray, roundHalfEven(width * scale), roundHalfEven(height * scale), "bicubic");
  }
  const data = new Float32Array(image.data.length), src = image.data;
  for (let i = 0; i < src.length; i++) data[i] = UNIT[src[i]];
  let work = { width: image.width, height: image.height, data };
  const crop = scale > 1;
  let margin = 0;
  if (crop) {
    margin = Math.floor(Math.max(work.width, work.height) / 4);
    work = padConstant(work, margin, median(border(work)));
  }
  return { work, crop, geometry: { sx: image.width / width, sy: image.height / height, margin } };
}

export function inkMap(work, crop) {
  const paper = crop ? median(border(work)) : null;
  const dark = crop ? paper > 0.5 : darkInk(work);
  const image = dark ? work : map(work, (v) => f32(1 - v));
  let background;
  if (crop) {
    const level = f32(dark ? paper : 1 - paper);
    background = map(image, (v) => Math.max(level, v));
  } else {
    background = backgroundOf(image);
  }
  const floor = f32(0.05), b = background.data, v = image.data, data = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) data[i] = clip01(f32(f32(b[i] - v[i]) / Math.max(b[i], floor)));
  return { width: work.width, height: work.height, data };
}

function darkInk(work) {
  const low = shrunk(work, POLARITY), coarse = shrunk(work, PAPER_SIDE);
  const residual = new Float64Array(low.data.length);
  let below = 0.0, above = 0.0;
  for (const share of [LOCAL_PAPER, BROAD_PAPER]) {
    const paper = medianFilter(coarse, Math.max(3, roundHalfEven(Math.max(coarse.width, coarse.height) * share) | 1));
    for (let y = 0; y < low.height; y++) {
      const row = Math.floor((y * coarse.height) / low.height) * coarse.width;
      for (let x = 0; x < low.width; x++) {
        const i = y * low.width + x;
        residual[i] = low.data[i] - paper.data[row + Math.floor((x * coarse.width) / low.width)];
      }
    }
    residual.sort();
    below -= percentileSorted(residual, TAIL);
    above += percentileSorted(residual, 100 - TAIL);
  }
  return below > above;
}

function shrunk(work, side) {
  const { width, height } = work;
  const scale = side / Math.max(height, width);
  const w = Math.max(1, roundHalfEven(width * scale)), h = Math.max(1, roundHalfEven(height * scale));
  const bytes = { width, height, data: new Uint8Array(work.data.length) };
  for (let i = 0; i < work.data.length; i++) bytes.data[i] = f32(work.data[i] * 255); // a Uint8Array truncates
  return resize(bytes, w, h, "box");
}

function backgroundOf(paperBright) {
  const { width, height } = paperBright;
  const low = resize(paperBright, Math.max(1, width >> 1), Math.max(1, height >> 1), "box");
  const k = Math.max(3, roundHalfEven(Math.max(low.width, low.height) / 4) | 1);
  const closed = rankFilter(rankFilter(low, k, Math.max), k, Math.min);
  const background = resize(closed, width, height, "bilinear").data, bright = paperBright.data;
  for (let i = 0; i < background.length; i++) if (bright[i] > background[i]) background[i] = bright[i];
  return { width, height, data: background };
}

function smooth(a) {
  const { width, height } = a;
  for (const axis of [0, 1]) {
    const src = a.data, out = new Float32Array(src.length);
    const n = axis === 0 ? height : width, step = axis === 0 ? width : 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const j = axis === 0 ? y : x, i = y * width + x;
        // the taps at j - 2 ... j + 2, edges repeated
        let m2 = i - 2 * step, m1 = i - step, p1 = i + step, p2 = i + 2 * step;
        if (j < 2 || j >= n - 2) {
          m2 = i + (Math.max(j - 2, 0) - j) * step;
          m1 = i + (Math.max(j - 1, 0) - j) * step;
          p1 = i + (Math.min(j + 1, n - 1) - j) * step;
          p2 = i + (Math.min(j + 2, n - 1) - j) * step;
        }
        let sum = src[m2];
        sum = f32(sum + f32(4 * src[m1]));
        sum = f32(sum + f32(6 * src[i]));
        sum = f32(sum + f32(4 * src[p1]));
        sum = f32(sum + src[p2]);
        out[i] = f32(sum / 16);
      }
    }
    a = { width, height, data: out };
  }
  return a;
}

function digitMask(ink) {
  const found = inkMask(ink);
  if (!found) return null;
  const { labels, stats } = components(found.mask, found.denoised);
  const keep = new Set(chooseComponents(stats, ink.width, ink.height));
  if (!keep.size) return null;
  const data = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) if (labels[i] && keep.has(labels[i])) data[i] = 1;
  return { width: ink.width, height: ink.height, data };
}

/** {mask, denoised}: Otsu on the denoised ink map without thin rules, or null when nothing stands out of
 * the paper's noise. */
export function inkMask(ink) {
  const denoised = removeRules(smooth(ink));
  const threshold = otsu(denoised.data), values = denoised.data;
  const mask = new Uint8Array(values.length);
  let count = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > threshold) (mask[i] = 1), count++;
  if (!count) return null;
  const inside = new Float64Array(count), outside = new Float64Array(values.length - count);
  for (let i = 0, a = 0, b = 0; i < values.length; i++) {
    if (mask[i]) inside[a++] = values[i];
    else outside[b++] = values[i];
  }
  const strong = percentile(inside, 90);
  const paperMean = outside.length ? mean(outside) : NaN;
  let squares = 0;
  for (const v of outside) squares += (v - paperMean) ** 2;
  const noise = outside.length ? Math.sqrt(squares / outside.length) : 0;
  if (strong < MIN_CONTRAST || strong - paperMean < MIN_SEPARATION * noise) return null;
  return { mask: { width: ink.width, height: ink.height, data: mask }, denoised };
}

function removeRules(ink, k = 5) {
  if (Math.min(ink.width, ink.height) < Math.floor((4 * MIN_SIDE) / 3)) return ink;
  const tenth = f32(0.1);
  for (const axis of [0, 1]) {
    // axis 0 opens vertically, which finds horizontal rules: one flag per row (per column for axis 1)
    const lines = axis === 0 ? ink.height : ink.width, along = axis === 0 ? ink.width : ink.height;
    if (!inkedLines(ink, axis, tenth, 0.6)) continue;
    const opened = rankFilter(rankFilter(ink, k, Math.min, [axis]), k, Math.max, [axis]);
    let rules = new Uint8Array(lines);
    for (let line = 0; line < lines; line++) {
      let count = 0;
      for (let j = 0; j < along; j++) {
        const i = axis === 0 ? line * ink.width + j : j * ink.width + line;
        if (f32(ink.data[i] - opened.data[i]) > tenth) count++;
      }
      rules[line] = count / along > 0.6 ? 1 : 0;
    }
    if (rules.some((r) => r)) {
      rules = rules.map((_, line) => (rules[line - 1] || rules[line] || rules[Math.min(line + 1, lines - 1)] ? 1 : 0));
      const data = ink.data.map((v, i) => {
        const line = axis === 0 ? Math.floor(i / ink.width) : i % ink.width;
        return rules[line] ? opened.data[i] : v;
      });
      ink = { width: ink.width, height: ink.height, data };
      if (axis === 0) ink = removeBoxEdges(ink, rules, k);
    }
  }
  return ink;
}

/** images._remove_box_edges: thin ink down one column (give or take a pixel) over BOX_EDGE of the rows
 * between two horizontal rules is a box's upright edge, and goes. */
function removeBoxEdges(ink, rules, k) {
  const { width, height } = ink, rows = [], breaks = [];
  for (let y = 0; y < height; y++) if (rules[y]) rows.push(y);
  for (let i = 0; i + 1 < rows.length; i++) if (rows[i + 1] - rows[i] > 1) breaks.push(i);
  if (!breaks.length) return ink;
  const opened = rankFilter(rankFilter(ink, k, Math.min, [1]), k, Math.max, [1]).data;
  const tenth = f32(0.1), raw = new Float32Array(width * height);
  for (let i = 0; i < raw.length; i++) raw[i] = f32(ink.data[i] - opened[i]) > tenth ? 1 : 0;
  const thin = rankFilter({ width, height, data: raw }, 3, Math.max, [1]).data;
  const data = ink.data.slice();
  for (const b of breaks) {
    const top = rows[b] + 1, bottom = rows[b + 1], edges = new Uint8Array(width);
    for (let x = 0; x < width; x++) {
      let count = 0;
      for (let y = top; y < bottom; y++) count += thin[y * width + x];
      edges[x] = count > BOX_EDGE * (bottom - top) ? 1 : 0;
    }
    for (let x = 0; x < width; x++) {
      if (!(edges[Math.max(x - 1, 0)] || edges[x] || edges[Math.min(x + 1, width - 1)])) continue;
      for (let y = top; y < bottom; y++) data[y * width + x] = opened[y * width + x];
    }
  }
  return { width, height, data };
}

/** Whether any row (axis 0) or column (axis 1) has more than `share` of its pixels above `level`. What the
 * opening removes is at most the ink itself, so without such a line there is no rule to find. */
function inkedLines(ink, axis, level, share) {
  const { width, height, data } = ink, counts = new Int32Array(axis === 0 ? height : width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if (data[y * width + x] > level) counts[axis === 0 ? y : x]++;
  }
  const along = axis === 0 ? width : height;
  return counts.some((count) => count / along > share);
}

function otsu(values) {
  const counts = new Float64Array(256);
  for (const v of values) if (v >= 0 && v <= 1) counts[Math.min(255, Math.floor(v * 256))]++;
  // numpy's cumulative sums run in the same order, so every term below is the same float64
  const masses = new Float64Array(256);
  let total = 0, totalMass = 0;
  for (let i = 0; i < 256; i++) {
    total += counts[i];
    totalMass += counts[i] * ((2 * i + 1) / 512);
    masses[i] = totalMass;
  }
  let weight = 0, best = -1, bestAt = 0;
  for (let i = 0; i < 256; i++) {
    weight += counts[i];
    let between = (totalMass * weight - masses[i] * total) ** 2 / (weight * (total - weight));
    if (!Number.isFinite(between)) between = 0;
    if (between > best) {
      best = between;
      bestAt = i;
    }
  }
  return (bestAt + 1) / 256;
}

export function components(mask, weight) {
  const { width, height } = mask;
  const runs = []; // [y, start, stop] in row-major order
  for (let y = 0; y < height; y++) {
    let x = 0;
    while (x < width) {
      if (!mask.data[y * width + x]) {
        x++;
        continue;
      }
      const start = x;
      while (x < width && mask.data[y * width + x]) x++;
      runs.push([y, start, x]);
    }
  }
  const parent = runs.map((_, i) => i);
  let above = [], here = [], row = -1;
  runs.forEach(([y, start, stop], run) => {
    if (y !== row) {
      above = y === row + 1 ? here : [];
      here = [];
      row = y;
    }
    for (const [aStart, aStop, aRun] of above) {
      if (aStart <= stop && aStop >= start) union(parent, run, aRun);
    }
    here.push([start, stop, run]);
  });
  const labels = new Int32Array(width * height);
  const stats = new Map();
  runs.forEach(([y, start, stop], run) => {
    const root = find(parent, run) + 1;
    let runMass = 0;
    for (let x = start; x < stop; x++) {
      labels[y * width + x] = root;
      runMass += weight.data[y * width + x]; // float64 sums of float32 weights: exact, as in Python
    }
    if (!stats.has(root)) stats.set(root, { label: root, area: 0, mass: 0, top: y, bottom: y, left: start, right: stop });
    const s = stats.get(root);
    s.area += stop - start;
    s.mass += runMass;
    s.bottom = y;
    s.left = Math.min(s.left, start);
    s.right = Math.max(s.right, stop);
  });
  for (const s of stats.values()) s.bottom += 1;
  return { labels, stats: [...stats.values()] };
}

function find(parent, i) {
  while (parent[i] !== i) {
    parent[i] = parent[parent[i]];
    i = parent[i];
  }
  return i;
}

function union(parent, a, b) {
  const ra = find(parent, a), rb = find(parent, b);
  if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
}

/** A shadow's or a page's edge, a fold, a rule: long across the image and a few pixels thick. */
export function isLine(s, width, height) {
  const tall = s.bottom - s.top, wide = s.right - s.left;
  const long = Math.max(tall / height, wide / width) > 0.6;
  return long && s.area / Math.max(tall, wide) < 0.03 * Math.max(tall, wide);
}

function chooseComponents(stats, width, height) {
  const candidates = stats.filter((s) => !isLine(s, width, height));
  if (!candidates.length) return [];
  const main = candidates.reduce((best, s) => (s.mass > best.mass ? s : best));
  const size = Math.max(main.bottom - main.top, main.right - main.left);
  const near = [main.top - size / 2, main.bottom + size / 2, main.left - size / 2, main.right + size / 2];
  return candidates
    .filter((s) => s.mass >= KEEP_MASS * main.mass && ((s.bottom > near[0] && s.top < near[1] && s.right > near[2]
      && s.left < near[3]) || beside(main, s)))
    .map((s) => s.label);
}

/** Whether s stands in main's line as another digit would (images._beside): a number's digits are all kept. */
function beside(main, s) {
  const tall = main.bottom - main.top, other = s.bottom - s.top;
  const shared = Math.min(main.bottom, s.bottom) - Math.max(main.top, s.top);
  return other >= BESIDE_HEIGHT * tall && shared >= 0.5 * Math.min(tall, other);
}

export function stretch(ink, mask) {
  const grown = rankFilter(mask, 5, Math.max).data, inside = mask.data, src = ink.data, n = src.length;
  let count = 0, restCount = 0;
  for (let i = 0; i < n; i++) {
    if (inside[i]) count++;
    if (!grown[i]) restCount++;
  }
  const values = new Float64Array(count), rest = new Float64Array(restCount);
  for (let i = 0, a = 0, b = 0; i < n; i++) {
    if (inside[i]) values[a++] = src[i];
    if (!grown[i]) rest[b++] = src[i];
  }
  const low = rest.length ? percentile(rest, 90) : 0.0;
  const high = percentile(values, 75);
  const low32 = f32(low), range = f32(Math.max(high - low, 1e-3));
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) if (grown[i]) data[i] = f32(clip01(f32(f32(src[i] - low32) / range)) * 255);
  return { width: ink.width, height: ink.height, data };
}

export function frame(digit) {
  const { width, height } = digit;
  const rowAny = new Float64Array(height), colAny = new Float64Array(width);
  digit.data.forEach((v, i) => {
    if (v) {
      rowAny[Math.floor(i / width)] = 1;
      colAny[i % width] = 1;
    }
  });
  const rows = nonzeroIndices(rowAny), cols = nonzeroIndices(colAny);
  if (!rows.length) throw new NoDigit("no digit found");
  const cropW = cols.at(-1) - cols[0] + 1, cropH = rows.at(-1) - rows[0] + 1;
  const crop = new Uint8Array(cropW * cropH);
  for (let y = 0; y < cropH; y++) {
    for (let x = 0; x < cropW; x++) {
      const v = digit.data[(y + rows[0]) * width + x + cols[0]];
      crop[y * cropW + x] = roundHalfEven(Math.min(255, Math.max(0, v)));
    }
  }
  const scale = FIT / Math.max(cropW, cropH);
  const fitH = Math.max(1, roundHalfEven(cropH * scale)), fitW = Math.max(1, roundHalfEven(cropW * scale));
  const fitted = resize({ width: cropW, height: cropH, data: crop }, fitW, fitH, "lanczos", 3.0);
  const rowSums = new Float64Array(fitH), colSums = new Float64Array(fitW);
  let total = 0;
  fitted.data.forEach((v, i) => {
    rowSums[Math.floor(i / fitW)] += v;
    colSums[i % fitW] += v;
    total += v;
  });
  if (total === 0) throw new NoDigit("no digit found");
  const centreY = dotIndex(rowSums) / total, centreX = dotIndex(colSums) / total;
  const top = Math.min(Math.max(roundHalfEven(CENTRE - centreY), 0), SIZE - fitH);
  const left = Math.min(Math.max(roundHalfEven(CENTRE - centreX), 0), SIZE - fitW);
  const canvas = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < fitH; y++) {
    for (let x = 0; x < fitW; x++) canvas[(top + y) * SIZE + left + x] = fitted.data[y * fitW + x];
  }
  return canvas;
}

// ---- Pillow's resampling (src/libImaging/Resample.c and Reduce.c) --------------------------------------

const FILTERS = {
  box: [0.5, (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0)],
  bilinear: [1.0, (x) => (Math.abs(x) < 1.0 ? 1.0 - Math.abs(x) : 0.0)],
  bicubic: [2.0, (x) => {
    const a = -0.5;
    x = Math.abs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
  }],
  lanczos: [3.0, (x) => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0)],
};
const PRECISION_BITS = 32 - 8 - 2;

function sinc(x) {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

/** images.resize: Image.resize one axis at a time, for a uint8 ("L") or float32 ("F") image. */
export function resize(image, width, height, filter, gap = null) {
  if (image.width !== width) image = resizeOnce(image, width, image.height, filter, gap);
  if (image.height !== height) image = resizeOnce(image, width, height, filter, gap);
  return image;
}

/** Image.resize(size, filter, reducing_gap=gap) of a size that differs along one axis. */
function resizeOnce(image, width, height, filter, gap) {
  const isFloat = image.data instanceof Float32Array;
  let box = [0, 0, image.width, image.height];
  if (gap !== null) {
    const factorX = Math.trunc(image.width / width / gap) || 1;
    const factorY = Math.trunc(image.height / height / gap) || 1;
    if (factorX > 1 || factorY > 1) {
      // the box is the whole image, so Pillow's "safe box" is too
      image = reduce(image, factorX, factorY);
      box = [0, 0, box[2] / factorX, box[3] / factorY];
    }
  }
  return resample(image, width, height, FILTERS[filter], box.map(f32), isFloat);
}

function resample(image, xsize, ysize, filter, box, isFloat) {
  const needHorizontal = xsize !== image.width || box[0] !== 0 || box[2] !== xsize;
  const needVertical = ysize !== image.height || box[1] !== 0 || box[3] !== ysize;
  const vertical = coefficients(image.height, box[1], box[3], ysize, filter);
  const first = vertical.bounds[0];
  const last = vertical.bounds[ysize * 2 - 2] + vertical.bounds[ysize * 2 - 1];
  let current = image, out = null;
  if (needHorizontal) {
    const horizontal = coefficients(image.width, box[0], box[2], xsize, filter);
    for (let i = 0; i < ysize; i++) vertical.bounds[i * 2] -= first;
    current = out = pass(image, horizontal, xsize, last - first, first, isFloat, true);
  }
  if (needVertical) out = pass(current, vertical, current.width, ysize, 0, isFloat, false);
  return out ?? { width: image.width, height: image.height, data: image.data.slice() };
}

function coefficients(inSize, in0, in1, outSize, [support0, filter]) {
  const scale = f32(in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = support0 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Float64Array(outSize * ksize), bounds = new Int32Array(outSize * 2);
  const inverse = 1.0 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = filter((x + xmin - center + 0.5) * inverse);
      kk[xx * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0.0) for (let x = 0; x < xmax; x++) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, kk, bounds };
}

function pass(image, { ksize, kk, bounds }, outWidth, outHeight, offset, isFloat, horizontal) {
  const n = outWidth * outHeight, data = isFloat ? new Float32Array(n) : new Uint8Array(n);
  const k = isFloat ? kk : kk.map((v) => (v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS))));
  const src = image.data, w = image.width, start = isFloat ? 0.0 : 1 << (PRECISION_BITS - 1);
  // each output pixel's sum runs over its taps in order, as Pillow's does: the same doubles either way
  const sums = new Float64Array(horizontal ? 1 : outWidth);
  for (let yy = 0; yy < outHeight; yy++) {
    if (horizontal) {
      const row = (yy + offset) * w;
      for (let xx = 0; xx < outWidth; xx++) {
        const min = bounds[xx * 2], count = bounds[xx * 2 + 1], taps = xx * ksize;
        let ss = start;
        for (let i = 0; i < count; i++) ss += src[row + min + i] * k[taps + i];
        data[yy * outWidth + xx] = isFloat ? ss : clipByte(ss);
      }
    } else {
      // a row at a time, tap by tap, so that the image is read along its rows
      const min = bounds[yy * 2], count = bounds[yy * 2 + 1], taps = yy * ksize;
      sums.fill(start);
      for (let i = 0; i < count; i++) {
        const weight = k[taps + i], row = (min + i) * w;
        for (let xx = 0; xx < outWidth; xx++) sums[xx] += src[row + xx] * weight;
      }
      for (let xx = 0; xx < outWidth; xx++) data[yy * outWidth + xx] = isFloat ? sums[xx] : clipByte(sums[xx]);
    }
  }
  return { width: outWidth, height: outHeight, data };
}

function clipByte(ss) {
  return Math.min(255, Math.max(0, Math.floor(ss / (1 << PRECISION_BITS))));
}

/** Image.reduce((fx, fy)) of a uint8 image: rounded block means, the last partial blocks included. */
function reduce(image, fx, fy) {
  const { width, height, data } = image;
  const outW = Math.ceil(width / fx), outH = Math.ceil(height / fy);
  const out = new Uint8Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const y0 = y * fy, y1 = Math.min(y0 + fy, height);
    for (let x = 0; x < outW; x++) {
      const x0 = x * fx, x1 = Math.min(x0 + fx, width);
      const count = (y1 - y0) * (x1 - x0);
      let ss = Math.floor(count / 2);
      for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) ss += data[yy * width + xx];
      out[y * outW + x] = Math.floor((ss * reduceMultiplier(count)) / 2 ** 24);
    }
  }
  return { width: outW, height: outH, data: out };
}

function reduceMultiplier(count) {
  return Math.trunc(f32(2 ** 32 / f32(256 * count)));
}

// ---- numpy and Pillow helpers ------------------------------------------------------------------------

/** A k-wide max or min filter (op = Math.max or Math.min) along the given axes, edges repeated.
 * van Herk/Gil-Werman: a running op within blocks of k from both ends, so each pixel costs three ops. */
export function rankFilter(a, k, op, axes = [0, 1]) {
  if (op !== Math.max && op !== Math.min) throw new Error("rankFilter takes Math.max or Math.min");
  // max(a, b) = -min(-a, -b): one loop serves both, and no function is called per pixel
  const sign = op === Math.max ? 1 : -1, half = k >> 1;
  for (const axis of axes) {
    if (k <= 7) {
      a = narrowRankFilter(a, half, sign > 0, axis);
      continue;
    }
    const src = a.data, out = new src.constructor(src.length);
    const n = axis === 0 ? a.height : a.width, lines = axis === 0 ? a.width : a.height;
    const step = axis === 0 ? a.width : 1, lineStep = axis === 0 ? 1 : a.width;
    const m = n + 2 * half, padded = new Float64Array(m), g = new Float64Array(m), h = new Float64Array(m);
    for (let line = 0; line < lines; line++) {
      const base = line * lineStep;
      for (let j = 0; j < m; j++) {
        const t = j < half ? 0 : j - half >= n ? n - 1 : j - half;
        padded[j] = sign * src[base + t * step];
      }
      for (let j = 0, r = 0; j < m; j++, r++) {
        if (r === k) r = 0;
        const v = padded[j];
        g[j] = r === 0 || g[j - 1] < v ? v : g[j - 1];
      }
      h[m - 1] = padded[m - 1];
      for (let j = m - 2; j >= 0; j--) {
        const v = padded[j];
        h[j] = j % k === k - 1 || h[j + 1] < v ? v : h[j + 1];
      }
      for (let i = 0; i < n; i++) {
        const x = h[i], y = g[i + k - 1];
        out[base + i * step] = sign * (x > y ? x : y);
      }
    }
    a = { width: a.width, height: a.height, data: out };
  }
  return a;
}

/** rankFilter for a small k (2 * half + 1): each pixel against its neighbours directly, a row at a time
 * (the max and the min written out, so that no comparison is chosen per pixel). */
function narrowRankFilter(a, half, isMax, axis) {
  const { width, height } = a, src = a.data, out = src.slice();
  for (let d = -half; d <= half; d++) {
    if (d === 0) continue;
    for (let y = 0; y < height; y++) {
      const row = y * width;
      // the neighbour d away along the axis is src[row + x + shift], except at the edges, which repeat
      let from = row, lo = 0, hi = width, shift = d;
      if (axis === 0) {
        from = Math.min(Math.max(y + d, 0), height - 1) * width;
        shift = from - row;
      } else {
        lo = Math.max(0, -d);
        hi = Math.min(width, width - d);
      }
      if (isMax) {
        for (let x = lo; x < hi; x++) if (src[row + x + shift] > out[row + x]) out[row + x] = src[row + x + shift];
        for (let x = 0; x < lo; x++) if (src[row] > out[row + x]) out[row + x] = src[row];
        for (let x = hi; x < width; x++) if (src[row + width - 1] > out[row + x]) out[row + x] = src[row + width - 1];
      } else {
        for (let x = lo; x < hi; x++) if (src[row + x + shift] < out[row + x]) out[row + x] = src[row + x + shift];
        for (let x = 0; x < lo; x++) if (src[row] < out[row + x]) out[row + x] = src[row];
        for (let x = hi; x < width; x++) if (src[row + width - 1] < out[row + x]) out[row + x] = src[row + width - 1];
      }
    }
  }
  return { width, height, data: out };
}

/** ImageFilter.MedianFilter(k): the median of each k x k window, edges repeated (a histogram per window:
 * the values are bytes). */
function medianFilter(a, k) {
  const half = k >> 1, rank = (k * k) >> 1, counts = new Int32Array(256), out = new Uint8Array(a.data.length);
  for (let y = 0; y < a.height; y++) {
    counts.fill(0);
    for (let dy = -half; dy <= half; dy++) for (let dx = -half; dx <= half; dx++) counts[at(a, dx, y + dy)]++;
    for (let x = 0; x < a.width; x++) {
      if (x > 0) { // slide the window one column: the column that leaves, out; the one that enters, in
        for (let dy = -half; dy <= half; dy++) {
          counts[at(a, x - 1 - half, y + dy)]--;
          counts[at(a, x + half, y + dy)]++;
        }
      }
      let value = 0;
      for (let seen = counts[0]; seen <= rank; seen += counts[++value]);
      out[y * a.width + x] = value;
    }
  }
  return { width: a.width, height: a.height, data: out };
}

function at(a, x, y) {
  x = Math.min(Math.max(x, 0), a.width - 1);
  y = Math.min(Math.max(y, 0), a.height - 1);
  return a.data[y * a.width + x];
}

function border(a) {
  const { width, height, data } = a, values = [];
  for (let x = 0; x < width; x++) values.push(data[x], data[(height - 1) * width + x]);
  for (let y = 0; y < height; y++) values.push(data[y * width], data[y * width + width - 1]);
  return values;
}

/** np.median of float32 values: the middle two averaged in float32. */
function median(values) {
  const sorted = Float64Array.from(values).sort(), n = sorted.length, mid = n >> 1;
  return n % 2 ? sorted[mid] : f32(f32(sorted[mid - 1] + sorted[mid]) / 2);
}

/** np.percentile's default (linear) on sorted values, with numpy's two-sided interpolation. */
export function percentileSorted(sorted, q) {
  const position = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(position), hi = Math.min(lo + 1, sorted.length - 1);
  return interpolate(sorted[lo], sorted[hi], position - lo);
}

/** percentileSorted of values in any order (a Float64Array, reordered in place): the two order statistics it
 * needs are selected, not sorted for, which is what numpy does too (np.partition). */
export function percentile(values, q) {
  const position = (q / 100) * (values.length - 1);
  const lo = Math.floor(position);
  select(values, lo);
  let next = values[lo];
  if (lo + 1 < values.length) {
    next = values[lo + 1];
    for (let i = lo + 2; i < values.length; i++) if (values[i] < next) next = values[i];
  }
  return interpolate(values[lo], next, position - lo);
}

function interpolate(a, b, t) {
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/** Reorders values so that values[k] is the k-th smallest, those before it no larger and those after no
 * smaller (quickselect, median-of-three pivots). */
function select(values, k) {
  let left = 0, right = values.length - 1;
  while (right > left) {
    const mid = (left + right) >> 1;
    const a = values[left], b = values[mid], c = values[right];
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = left, j = right;
    while (i <= j) {
      while (values[i] < pivot) i++;
      while (values[j] > pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i++] = values[j];
        values[j--] = t;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return;
  }
}

function padConstant(a, pad, value) {
  const width = a.width + 2 * pad, height = a.height + 2 * pad;
  const data = new Float32Array(width * height).fill(value);
  for (let y = 0; y < a.height; y++) data.set(a.data.subarray(y * a.width, (y + 1) * a.width), (y + pad) * width + pad);
  return { width, height, data };
}

function map(a, fn) {
  return { width: a.width, height: a.height, data: a.data.map(fn) };
}

function mean(values) {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

function nonzeroIndices(values) {
  const out = [];
  values.forEach((v, i) => v && out.push(i));
  return out;
}

function dotIndex(values) {
  let sum = 0;
  values.forEach((v, i) => (sum += v * i));
  return sum;
}

function clip01(v) {
  return Math.min(1, Math.max(0, v));
}

/** numpy's and Python's round: halves to even. */
export function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
