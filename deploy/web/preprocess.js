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
const POLARITY = 32;
const MIN_SIDE = 96;
const MIN_CONTRAST = 0.2;
const MIN_SEPARATION = 9.0;
const f32 = Math.fround;

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

/** A 2-D uint8 image to the model's (28*28) uint8 input; throws NoDigit when there is no ink. */
export function prepare(gray) {
  if (gray.width * gray.height > MAX_PIXELS) {
    throw new Error(`${gray.width}x${gray.height} exceeds the ${MAX_PIXELS.toLocaleString("en")}-pixel cap`);
  }
  if (gray.width === SIZE && gray.height === SIZE) {
    const framed = framedDigit(gray.data);
    if (framed) return framed;
  }
  return mnistNormalize(gray);
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
  let work = { width: image.width, height: image.height, data: Float32Array.from(image.data, (v) => f32(v / 255)) };
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
  const floor = f32(0.05);
  return zip(background, image, (b, v) => clip01(f32(f32(b - v) / Math.max(b, floor))));
}

function darkInk(work) {
  const { width, height } = work;
  const scale = POLARITY / Math.max(height, width);
  const w = Math.max(1, roundHalfEven(width * scale)), h = Math.max(1, roundHalfEven(height * scale));
  const bytes = { width, height, data: Uint8Array.from(work.data, (v) => Math.trunc(f32(v * 255))) };
  const low = resize(bytes, w, h, "box");
  const local = medianFilter(low, Math.max(3, roundHalfEven(Math.max(w, h) * 0.6) | 1));
  const residual = Float64Array.from(low.data, (v, i) => v - local.data[i]).sort();
  const darkest = percentileSorted(residual, 1), brightest = percentileSorted(residual, 99);
  return -darkest > brightest;
}

function backgroundOf(paperBright) {
  const { width, height } = paperBright;
  const low = resize(paperBright, Math.max(1, width >> 1), Math.max(1, height >> 1), "box");
  const k = Math.max(3, roundHalfEven(Math.max(low.width, low.height) / 4) | 1);
  const closed = rankFilter(rankFilter(low, k, Math.max), k, Math.min);
  const background = resize(closed, width, height, "bilinear");
  return zip(background, paperBright, Math.max);
}

function smooth(a) {
  const weights = [1, 4, 6, 4, 1];
  for (const axis of [0, 1]) {
    const out = new Float32Array(a.data.length);
    for (let y = 0; y < a.height; y++) {
      for (let x = 0; x < a.width; x++) {
        let sum = 0;
        for (let i = 0; i < 5; i++) {
          const v = axis === 0 ? at(a, x, y + i - 2) : at(a, x + i - 2, y);
          sum = f32(sum + f32(weights[i] * v));
        }
        out[y * a.width + x] = f32(sum / 16);
      }
    }
    a = { width: a.width, height: a.height, data: out };
  }
  return a;
}

function digitMask(ink) {
  const found = inkMask(ink);
  if (!found) return null;
  const { labels, stats } = components(found.mask, found.denoised);
  const keep = new Set(chooseComponents(stats, ink.width, ink.height));
  if (!keep.size) return null;
  return { width: ink.width, height: ink.height, data: labels.map((label) => (keep.has(label) ? 1 : 0)) };
}

/** {mask, denoised}: Otsu on the denoised ink map without thin rules, or null when nothing stands out of
 * the paper's noise. */
export function inkMask(ink) {
  const denoised = removeRules(smooth(ink));
  const threshold = otsu(denoised.data);
  const mask = denoised.data.map((v) => (v > threshold ? 1 : 0));
  const inside = [], outside = [];
  denoised.data.forEach((v, i) => (mask[i] ? inside : outside).push(v));
  if (!inside.length) return null;
  const strong = percentileSorted(Float64Array.from(inside).sort(), 90);
  const paperMean = outside.length ? mean(outside) : NaN;
  const noise = outside.length ? Math.sqrt(mean(outside.map((v) => (v - paperMean) ** 2))) : 0;
  if (strong < MIN_CONTRAST || strong - paperMean < MIN_SEPARATION * noise) return null;
  return { mask: { width: ink.width, height: ink.height, data: mask }, denoised };
}

function removeRules(ink, k = 5) {
  if (Math.min(ink.width, ink.height) < Math.floor((4 * MIN_SIDE) / 3)) return ink;
  const tenth = f32(0.1);
  for (const axis of [0, 1]) {
    const opened = rankFilter(rankFilter(ink, k, Math.min, [axis]), k, Math.max, [axis]);
    // axis 0 opens vertically, which finds horizontal rules: one flag per row (per column for axis 1)
    const lines = axis === 0 ? ink.height : ink.width, along = axis === 0 ? ink.width : ink.height;
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
    }
  }
  return ink;
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
      runMass = f32(runMass + weight.data[y * width + x]);
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
    .filter((s) => s.mass >= 0.08 * main.mass && s.bottom > near[0] && s.top < near[1] && s.right > near[2] && s.left < near[3])
    .map((s) => s.label);
}

export function stretch(ink, mask) {
  const grown = rankFilter(mask, 5, Math.max);
  const values = [], rest = [];
  ink.data.forEach((v, i) => {
    if (mask.data[i]) values.push(v);
    if (!grown.data[i]) rest.push(v);
  });
  const low = rest.length ? percentileSorted(Float64Array.from(rest).sort(), 90) : 0.0;
  const high = percentileSorted(Float64Array.from(values).sort(), 75);
  const low32 = f32(low), range = f32(Math.max(high - low, 1e-3));
  const data = ink.data.map((v, i) => (grown.data[i] ? f32(clip01(f32(f32(v - low32) / range)) * 255) : 0));
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
  const data = isFloat ? new Float32Array(outWidth * outHeight) : new Uint8Array(outWidth * outHeight);
  const k = isFloat ? kk : kk.map((v) => (v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS))));
  const src = image.data, w = image.width;
  for (let yy = 0; yy < outHeight; yy++) {
    for (let xx = 0; xx < outWidth; xx++) {
      const j = horizontal ? xx : yy;
      const min = bounds[j * 2], count = bounds[j * 2 + 1];
      let ss = isFloat ? 0.0 : 1 << (PRECISION_BITS - 1);
      for (let i = 0; i < count; i++) {
        const v = horizontal ? src[(yy + offset) * w + min + i] : src[(min + i) * w + xx];
        ss += v * k[j * ksize + i];
      }
      data[yy * outWidth + xx] = isFloat ? ss : Math.min(255, Math.max(0, Math.floor(ss / (1 << PRECISION_BITS))));
    }
  }
  return { width: outWidth, height: outHeight, data };
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
  const half = k >> 1;
  for (const axis of axes) {
    const out = new a.data.constructor(a.data.length);
    const n = axis === 0 ? a.height : a.width, lines = axis === 0 ? a.width : a.height;
    const step = axis === 0 ? a.width : 1, lineStep = axis === 0 ? 1 : a.width;
    const m = n + 2 * half, padded = new Float64Array(m), g = new Float64Array(m), h = new Float64Array(m);
    for (let line = 0; line < lines; line++) {
      const base = line * lineStep;
      for (let j = 0; j < m; j++) padded[j] = a.data[base + Math.min(Math.max(j - half, 0), n - 1) * step];
      for (let j = 0; j < m; j++) g[j] = j % k === 0 ? padded[j] : op(g[j - 1], padded[j]);
      for (let j = m - 1; j >= 0; j--) h[j] = j % k === k - 1 || j === m - 1 ? padded[j] : op(h[j + 1], padded[j]);
      for (let i = 0; i < n; i++) out[base + i * step] = op(h[i], g[i + k - 1]);
    }
    a = { width: a.width, height: a.height, data: out };
  }
  return a;
}

/** ImageFilter.MedianFilter(k): the median of each k x k window, edges repeated (a histogram per window:
 * the values are bytes). */
function medianFilter(a, k) {
  const half = k >> 1, rank = (k * k) >> 1, counts = new Int32Array(256), out = new Uint8Array(a.data.length);
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      counts.fill(0);
      for (let dy = -half; dy <= half; dy++) for (let dx = -half; dx <= half; dx++) counts[at(a, x + dx, y + dy)]++;
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
  const lo = Math.floor(position), hi = Math.min(lo + 1, sorted.length - 1), t = position - lo;
  const a = sorted[lo], b = sorted[hi], diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
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

function zip(a, b, fn) {
  return { width: a.width, height: a.height, data: a.data.map((v, i) => fn(v, b.data[i])) };
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
