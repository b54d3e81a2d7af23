// mnist_predict.lines in JavaScript: the line reader's input and output (read deploy/mnist_predict/lines.py's
// docstring for the why). lineImage() makes a line's image exactly as Python does; the page runs lines.onnx on
// padded() and keeps cropped(); decode() and textProbability() read the columns. tests/test_web.py compares the
// line images pixel for pixel and the readings that numbers.js weighs with them.
//
// Pure functions on {width, height, data}; no DOM, so node runs it too (tests/web/numbers_cli.mjs).

import { rankFilter, resize, roundHalfEven } from "./preprocess.js";

export const HEIGHT = 32;
export const DIGIT_HEIGHT = 24;
export const PAD = 4;
export const STRIDE = 4;
export const MARGIN = 16;
export const BLANK = 0;
export const CLASSES = "0123456789?";
export const FILE = "lines.onnx";

/** lines.line_image: {image: {width, height: HEIGHT, data: Uint8Array}, place: [x0, y0, scale]} for a line of
 * pieces of the stretched image (Float32Array 0-255) and its component labels. */
export function lineImage(stretched, labels, line, height) {
  const top = Math.min(...line.map((p) => p.top)), bottom = Math.max(...line.map((p) => p.bottom));
  const left = Math.min(...line.map((p) => p.left)), right = Math.max(...line.map((p) => p.right));
  const w = right - left, h = bottom - top, mine = new Set(line.map((p) => p.label));
  const own = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) own[y * w + x] = mine.has(labels.data[(y + top) * labels.width + x + left]) ? 1 : 0;
  }
  const grown = rankFilter({ width: w, height: h, data: own }, 5, Math.max).data;
  const ink = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = stretched.data[(y + top) * stretched.width + x + left];
      if (grown[y * w + x]) ink[y * w + x] = roundHalfEven(Math.min(255, Math.max(0, v)));
    }
  }
  const scale = Math.min(DIGIT_HEIGHT / height, (HEIGHT - 2) / h);
  const width = Math.max(1, roundHalfEven(w * scale)), rows = Math.max(1, roundHalfEven(h * scale));
  const fitted = resize({ width: w, height: h, data: ink }, width, rows, "lanczos", 3.0);
  const data = new Uint8Array(HEIGHT * (width + 2 * PAD)), y0 = Math.trunc((HEIGHT - rows) / 2);
  for (let y = 0; y < rows; y++) data.set(fitted.data.subarray(y * width, (y + 1) * width), (y + y0) * (width + 2 * PAD) + PAD);
  return { image: { width: width + 2 * PAD, height: HEIGHT, data }, place: [left - PAD / scale, top - y0 / scale, scale] };
}

/** The output columns that cover the image. */
export function columns(image) {
  return Math.ceil(image.width / STRIDE);
}

/** The model's input for a line image: [Float32Array(HEIGHT x width), width], MARGIN px of paper either side. */
export function padded(image) {
  const width = columns(image) * STRIDE + 2 * MARGIN, input = new Float32Array(HEIGHT * width);
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < image.width; x++) input[y * width + MARGIN + x] = image.data[y * image.width + x];
  }
  return [input, width];
}

/** The rows of the model's flat (width / STRIDE x classes) output for padded(image) that cover the image. */
export function cropped(output, classes, image) {
  const first = MARGIN / STRIDE;
  return Array.from({ length: columns(image) }, (_, c) => Array.from(output.subarray((first + c) * classes, (first + c + 1) * classes)));
}

/** The output column of a character of a text: a digit, or "?". */
export function label(char) {
  return CLASSES.indexOf(char) + 1;
}

/** lines.decode: [the best path's text, its probability, per character its columns [first, last]]. */
export function decode(probabilities) {
  let text = "", previous = BLANK, logs = 0;
  const spans = [];
  probabilities.forEach((row, column) => {
    let top = 0;
    for (let k = 1; k < row.length; k++) if (row[k] > row[top]) top = k;
    logs += Math.log(Math.max(row[top], 1e-30));
    if (top !== BLANK && top === previous) spans[spans.length - 1][1] = column;
    else if (top !== BLANK) {
      text += CLASSES[top - 1];
      spans.push([column, column]);
    }
    previous = top;
  });
  return [text, Math.exp(logs), spans];
}

/** numpy's logaddexp. */
export function logaddexp(a, b) {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  if (a === b) return a + Math.LN2;
  const d = a - b;
  return d > 0 ? a + Math.log1p(Math.exp(-d)) : b + Math.log1p(Math.exp(d));
}

/** lines.text_probability: P(text) under the CTC model, by the forward algorithm. */
export function textProbability(probabilities, text) {
  const logs = probabilities.map((row) => row.map((p) => Math.log(Math.max(p, 1e-30))));
  const n = 2 * text.length + 1, labels = new Array(n).fill(BLANK);
  for (let k = 0; k < text.length; k++) labels[2 * k + 1] = label(text[k]);
  const skip = labels.map((l, s) => s >= 2 && l !== BLANK && l !== labels[s - 2]);
  let alpha = labels.map((l, s) => (s < 2 ? logs[0][l] : -Infinity));
  for (let column = 1; column < logs.length; column++) {
    alpha = labels.map((l, s) => {
      let a = logaddexp(alpha[s], s >= 1 ? alpha[s - 1] : -Infinity);
      a = logaddexp(a, skip[s] ? alpha[s - 2] : -Infinity);
      return a + logs[column][l];
    });
  }
  return Math.exp(n > 1 ? logaddexp(alpha[n - 2], alpha[n - 1]) : alpha[n - 1]);
}
