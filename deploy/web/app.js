// The page: the export's model.onnx in onnxruntime-web (WebAssembly), fed by preprocess.js.
// Served with the export by `mnist-predict web EXPORT_DIR`; tests/test_web.py drives it through window.mnist.
import * as ort from "./ort/ort.wasm.min.mjs";
import { NoDigit, SIZE, prepare, toGrayscale } from "./preprocess.js";
import { choose, layoutOf, withLineReading } from "./numbers.js";
import * as lineReader from "./lines.js";
import { decode, prepareFile } from "./decode.js";

const EXPORT = "./export/";
const COLUMNS = ["path", "label", "class_name", "probability", "top_k", "status", "review", "error"];
// mnist-predict read's columns (mnist_predict.batch.READ_COLUMNS)
const READ_COLUMNS = ["path", "text", "confidence", "digits", "boxes", "review", "status", "error", "review_reason"];
const BATCH = 64;
const $ = (id) => document.getElementById(id);

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
// Threads need cross-origin isolation, which `mnist-predict web` turns on with its COOP/COEP headers.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

let session, lineSession, manifest, labels;
let rows = [], columns = COLUMNS;

const ready = (async () => {
  manifest = await (await fetch(EXPORT + "manifest.json")).json();
  labels = manifest.labels;
  // the threshold export chose with a guarantee (--review-data), as mnist-predict takes it; the input overrides it
  const chosen = manifest.review_threshold?.threshold;
  if (typeof chosen === "number") $("threshold").value = String(chosen);
  const [bytes, digest] = await checkedFile("model.onnx");
  session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  // the line reader, where the export lists one, as mnist-predict read weighs it (mnist_predict.lines)
  if (manifest.files?.[lineReader.FILE]) {
    lineSession = await ort.InferenceSession.create((await checkedFile(lineReader.FILE))[0], { executionProviders: ["wasm"] });
  }
  showModel(digest);
  $("drawWhat").textContent = drawWhat();
  $("readNumbers").disabled = !digitModel();
  $("parity").disabled = false;
  $("status").textContent = `Ready: onnxruntime-web ${ort.env.versions?.web ?? ""}, WebAssembly, ${ort.env.wasm.numThreads} thread(s).`;
  return { ready_ms: performance.now() };
})();
ready.catch((error) => ($("status").textContent = `Could not load the model: ${error.message}`));

/** [bytes, sha256] of a file of the export, refused where its sha256 differs from the manifest's. */
async function checkedFile(name) {
  const bytes = new Uint8Array(await (await fetch(EXPORT + name)).arrayBuffer());
  const digest = hex(await crypto.subtle.digest("SHA-256", bytes));
  const expected = manifest.files?.[name]?.sha256;
  if (expected && digest !== expected) throw new Error(`${name} sha256 ${digest} differs from the manifest's ${expected}`);
  return [bytes, digest];
}

/** How a file becomes this model's input, as mnist-predict decides it (Predictor.resize). */
function preprocess() {
  return manifest.preprocess ?? (manifest.dataset === "fashion_mnist" ? "stretch" : "mnist");
}

/** The model on n raw images (a Float32Array of n x 28 x 28 pixels): its (n x classes) probabilities, flat. */
async function infer(pixels, n) {
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", pixels, [n, SIZE, SIZE]) };
  return (await session.run(feeds))[session.outputNames[0]].data;
}

/** The line reader's columns for each line image, each line run alone (lines.LineReader.run). */
async function readLines(lines) {
  const outputs = [];
  for (const { image } of lines) {
    const [input, width] = lineReader.padded(image);
    const feeds = { [lineSession.inputNames[0]]: new ort.Tensor("float32", input, [1, lineReader.HEIGHT, width]) };
    const output = (await lineSession.run(feeds))[lineSession.outputNames[0]];
    outputs.push(lineReader.cropped(output.data, output.dims[2], image));
  }
  return outputs;
}

/** Probabilities for a batch of prepared 28x28 digits (uint8 arrays), one array per digit. */
async function run(digits) {
  const input = new Float32Array(digits.length * SIZE * SIZE);
  digits.forEach((digit, i) => input.set(digit, i * SIZE * SIZE));
  const output = await infer(input, digits.length);
  const classes = output.length / digits.length;
  return digits.map((_, i) => Array.from(output.subarray(i * classes, (i + 1) * classes)));
}

function threshold() {
  return Number($("threshold").value);
}

// A number's confidence is not a digit's probability, and the guarantee of export's threshold is for digits: a
// reading is flagged below the threshold export chose with read's fitted confidence (manifest.json's
// reading_calibration), else below 0.8, as `mnist-predict read` does, unless the person set the threshold here.
const FIXED_THRESHOLD = 0.8; // mnist_predict.review.DEFAULT_MIN_CONFIDENCE
let thresholdSet = false;

function readingThreshold() {
  return thresholdSet ? threshold() : (manifest.reading_calibration?.min_confidence ?? FIXED_THRESHOLD);
}

function answer(probabilities) {
  const label = probabilities.indexOf(Math.max(...probabilities));
  return { label, class_name: labels[label], probabilities, review: probabilities[label] < threshold() };
}

// Dropped files are decoded and prepared by workers, one per core (the page's thread runs the model and the
// table); where a worker cannot start, on the page's thread. Each worker holds a few files at a time, so that
// it never waits for the page's thread to hand it the next one, and no worker is left with a long queue.
const PREPARERS = Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
const IN_FLIGHT = 4;
let preparers = null, jobs = 0;
const queue = [];

function startPreparers() {
  preparers = [];
  for (let i = 0; i < PREPARERS; i++) {
    let worker;
    try {
      worker = new Worker(new URL("./prepare_worker.js", import.meta.url), { type: "module" });
    } catch {
      break;
    }
    const preparer = { worker, jobs: new Map() };
    worker.onmessage = ({ data: { id, ...result } }) => {
      // by id: a worker takes the next file while it waits for a decode, so its answers may come out of order
      preparer.jobs.get(id).resolve(result);
      preparer.jobs.delete(id);
      dispatch();
    };
    worker.onerror = (event) => {
      // this browser's workers cannot run the page's modules: its file, and the rest, on the page's thread
      event.preventDefault();
      preparers = preparers.filter((p) => p !== preparer);
      for (const job of preparer.jobs.values()) prepareFile(job.file, preprocess()).then(job.resolve);
      if (!preparers.length) queue.splice(0).forEach((job) => prepareFile(job.file, preprocess()).then(job.resolve));
    };
    preparers.push(preparer);
  }
}

function dispatch() {
  for (const preparer of preparers) {
    while (preparer.jobs.size < IN_FLIGHT && queue.length) {
      const job = queue.shift(), id = jobs++;
      preparer.jobs.set(id, job);
      preparer.worker.postMessage({ id, file: job.file, mode: preprocess() });
    }
  }
}

/** decode.prepareFile(file, preprocess()), in a worker. */
function prepareElsewhere(file) {
  if (preparers === null) startPreparers();
  if (!preparers.length) return prepareFile(file, preprocess());
  return new Promise((resolve) => {
    queue.push({ file, resolve });
    dispatch();
  });
}

// ---- drawing ---------------------------------------------------------------------------------------------

const pad = $("pad");
const pen = pad.getContext("2d", { willReadFrequently: true });
let drawing = false, pending = false, last = null;
const SEEN_DIGITS = "What the model sees (28x28)"; // the panel beside the pad, as index.html first shows it

/** A model of the digits 0-9, which can read whole numbers. */
function digitModel() {
  return labels.length === 10 && labels.every((label, i) => label === String(i));
}

/** What the pad asks for: a digit or a number for a digit model, else the model's own classes. */
function drawWhat() {
  return digitModel() ? "Draw a digit or a number" : `Draw one of: ${labels.join(", ")}`;
}

function clearPad() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, pad.width, pad.height);
  seenPanel(SEEN_DIGITS, false);
  $("answer").textContent = "Draw with a mouse, a finger or a pen.";
  $("reading").textContent = "";
  $("bars").replaceChildren();
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  last = point(event);
  pad.setPointerCapture(event.pointerId);
  stroke(event);
});
pad.addEventListener("pointermove", (event) => drawing && stroke(event));
for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => (drawing = false));
$("clear").addEventListener("click", clearPad);
$("threshold").addEventListener("change", () => {
  thresholdSet = true;
  predictPad();
});

function stroke(event) {
  const [x, y] = point(event);
  // a pen's pressure thickens the line; a mouse reports 0.5
  pen.lineWidth = 18 * (event.pointerType === "pen" ? 0.5 + event.pressure : 1);
  pen.lineCap = pen.lineJoin = "round";
  pen.strokeStyle = "#000";
  pen.beginPath();
  pen.moveTo(...last);
  pen.lineTo(x, y);
  pen.stroke();
  last = [x, y];
  predictPad();
}

/** Predicts the pad, at most one prediction in flight: as the person draws, the newest strokes win. */
async function predictPad() {
  if (pending || !session) return;
  pending = true;
  try {
    await new Promise(requestAnimationFrame);
    const gray = toGrayscale(pen.getImageData(0, 0, pad.width, pad.height).data, pad.width, pad.height);
    let digit;
    try {
      digit = prepare(gray, preprocess());
    } catch (error) {
      if (!(error instanceof NoDigit)) throw error;
      $("answer").textContent = "Nothing to read yet.";
      return;
    }
    const reading = digitModel() ? await read(gray) : null;
    if (reading && reading.digits.length > 1) {  // a number: what the models saw of it, and the reading
      const seen = seenOf(reading);
      if (seen.kind === "digits") showSeen(...seen.images);
      else showLines(seen.images);
      $("answer").textContent = "";
      $("bars").replaceChildren();
    } else {
      showSeen(digit);
      showAnswer(answer((await run([digit]))[0]));
    }
    $("reading").textContent = "";
    if (reading) showReading(reading);
  } finally {
    pending = false;
  }
}

/** The whole number in a grayscale image, as `mnist-predict read` reads it: numbers.js cuts it into
 * candidate digits, the model reads them all, the search picks the reading; where the export has a line
 * reader, its reading of each line is weighed against the search's. */
async function read(gray, length = null) {
  const layout = layoutOf(gray, Boolean(lineSession));
  const probabilities = await run(layout.inputs);
  let reading = choose(layout, probabilities, length);
  if (lineSession) {
    reading = withLineReading(reading, layout, probabilities, await readLines(layout.lines), length,
      manifest.reading_calibration);
  }
  const reasons = [...reading.review];
  if (reading.confidence < readingThreshold()) reasons.unshift(`confidence below ${readingThreshold()}`);
  return { ...reading, reasons, inputs: layout.inputs, lines: layout.lines.map(({ image }) => image) };
}

/** What the models saw of a reading: the digit model's input for each digit, or, where some digits were read
 * in the line reader's columns (no cut holds them), the line images the line reader read. */
function seenOf(reading) {
  if (reading.indices.length === reading.digits.length) {
    return { kind: "digits", images: reading.indices.map((i) => reading.inputs[i]) };
  }
  return { kind: "lines", images: reading.lines };
}

function showReading(reading) {
  const flag = reading.reasons.length ? ` <span class="flag">review: ${escapeHtml(reading.reasons.join("; "))}</span>` : "";
  const digits = reading.digits.map(([label, p]) => `${escapeHtml(label)} ${(p * 100).toFixed(1)}%`).join(", ");
  $("reading").innerHTML = `Number: <b id="number">${escapeHtml(reading.text)}</b> ${(reading.confidence * 100).toFixed(1)}%` +
    ` <span class="muted">(${digits})</span>${flag}`;
}

/** The model's 28x28 inputs, side by side: one digit fills the 112x112 square, a number's share it. */
function showSeen(...digits) {
  const seen = seenPanel(SEEN_DIGITS, false);
  const per = Math.ceil(Math.sqrt(digits.length)), cell = 112 / per;
  digits.forEach((digit, k) => {
    seen.drawImage(grayCanvas(SIZE, SIZE, digit), (k % per) * cell, Math.floor(k / per) * cell, cell, cell);
  });
}

/** Line images (white ink on black, HEIGHT px high), one under another, each as large as fits the square. */
function showLines(images) {
  const seen = seenPanel("What the line reader sees (32 px high)", true), band = 112 / images.length;
  images.forEach(({ width, height, data }, k) => {
    const scale = Math.min(112 / width, band / height);
    seen.drawImage(grayCanvas(width, height, data), (112 - width * scale) / 2, k * band + (band - height * scale) / 2,
      width * scale, height * scale);
  });
}

/** The cleared 112x112 panel's context, under its caption. */
function seenPanel(caption, smooth) {
  $("seenWhat").textContent = caption;
  const seen = $("seen").getContext("2d");
  seen.clearRect(0, 0, 112, 112);
  seen.imageSmoothingEnabled = smooth;
  return seen;
}

/** A canvas of 0-255 gray values, row by row. */
function grayCanvas(width, height, values) {
  const image = new ImageData(width, height);
  values.forEach((v, i) => image.data.set([v, v, v, 255], i * 4));
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

function showAnswer({ label, class_name, probabilities, review }) {
  const flag = review ? ` <span class="flag">review: top probability below ${threshold()}</span>` : "";
  $("answer").innerHTML = `<b id="predicted">${escapeHtml(class_name)}</b> ${(probabilities[label] * 100).toFixed(1)}%${flag}`;
  $("bars").replaceChildren(...probabilities.flatMap((p, i) => {
    const bar = Object.assign(document.createElement("div"), { className: i === label ? "bar top" : "bar" });
    bar.append(Object.assign(document.createElement("span"), { style: `width: ${(p * 100).toFixed(1)}%` }));
    return [text("span", labels[i]), bar, text("span", `${(p * 100).toFixed(2)}%`)];
  }));
}

// ---- files ---------------------------------------------------------------------------------------------

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry()).filter(Boolean);
  const files = (await Promise.all(entries.map(filesOf))).flat();
  // files dropped one by one are taken as they are, as mnist-predict takes files named on its command line
  window.mnist.lastRun = entries.some((entry) => entry.isDirectory)
    ? predictFiles(...listed(files)) : predictFiles(files);
});
$("files").addEventListener("change", (event) => (window.mnist.lastRun = predictFiles(chosen(event.target.files))));
$("folder").addEventListener("change",
  (event) => (window.mnist.lastRun = predictFiles(...listed(chosen(event.target.files)))));

/** Chosen files with their paths: a chosen folder keeps them (webkitRelativePath), sorted as mnist-predict sorts. */
function chosen(files) {
  return [...files].map((file) => Object.assign(file, { path: file.webkitRelativePath || file.name }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

// What mnist-predict lists in a folder: image suffixes, no hidden files (mnist_predict.batch.IMAGE_SUFFIXES).
const IMAGE_SUFFIXES = [".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"];

/** [the image files of a folder's listing, how many others it held]. */
function listed(files) {
  const images = files.filter((file) => !file.path.split("/").some((part) => part.startsWith(".")) &&
    IMAGE_SUFFIXES.some((suffix) => file.path.toLowerCase().endsWith(suffix)));
  return [images, files.length - images.length];
}
$("download").addEventListener("click", () => {
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(new Blob([toCsv(rows)], { type: "text/csv" })),
    download: columns === READ_COLUMNS ? "numbers.csv" : "predictions.csv",
  });
  link.click();
  URL.revokeObjectURL(link.href);
});

async function filesOf(entry, prefix = "") {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [Object.assign(file, { path: prefix + file.name })];
  }
  const reader = entry.createReader(), children = [];
  for (let batch; (batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject))).length; ) {
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((child) => filesOf(child, `${prefix}${entry.name}/`)));
  return nested.flat().sort((a, b) => (a.path < b.path ? -1 : 1));
}

let unlisted = 0;

/** Predicts files as `mnist-predict` does: one row each, in the predictor's columns; a bad file is an error row.
 * `skipped`: how many files of a folder were not images, for the summary. */
async function predictFiles(files, skipped = 0) {
  await ready;
  if ($("readNumbers").checked) return readFiles(files, skipped);
  const body = startTable(COLUMNS, ["file", "label", "probability", "top 3", "status", "review"], skipped);
  const start = performance.now();
  const prepareBatch = (i) => Promise.all(files.slice(i, i + BATCH).map(prepareElsewhere));
  let next = prepareBatch(0);
  for (let i = 0; i < files.length; i += BATCH) {
    const batch = files.slice(i, i + BATCH), digits = [], good = [];
    const prepared = await next;
    if (i + BATCH < files.length) next = prepareBatch(i + BATCH); // the workers go on while the model runs
    prepared.forEach((p, j) => p.digit && (digits.push(p.digit), good.push(j)));
    const probabilities = digits.length ? await run(digits) : [];
    const byIndex = new Map(good.map((j, n) => [j, probabilities[n]]));
    batch.forEach((file, j) => {
      const row = toRow(file.path || file.name, byIndex.get(j), prepared[j].error);
      rows.push(row);
      body.append(tableRow(row));
    });
    showFileStats(rows.length, files.length, performance.now() - start);
  }
  $("download").disabled = !rows.length;
  return { rows, seconds: (performance.now() - start) / 1000 };
}

/** Reads files as `mnist-predict read` does: one row each, in its columns; a bad file is an error row. */
async function readFiles(files, skipped = 0) {
  const body = startTable(READ_COLUMNS, ["file", "number", "confidence", "digits", "status", "review"], skipped);
  const start = performance.now();
  for (const file of files) {
    const path = file.path || file.name;
    let row;
    try {
      const r = await read(await decode(file));
      row = {
        path, text: r.text, confidence: r.confidence.toFixed(6),
        digits: r.digits.map(([label, p]) => `${label}:${p.toFixed(6)}`).join(" "),
        boxes: r.boxes.map((box) => box.join(",")).join(" "),
        review: r.reasons.length ? "yes" : "", status: "ok", error: "", review_reason: r.reasons.join("; "),
      };
    } catch (error) {
      const reason = error instanceof NoDigit ? error.message : `not an image the browser can read: ${error.message}`;
      row = { path, text: "", confidence: "", digits: "", boxes: "", review: "", status: "error", error: reason, review_reason: "" };
    }
    rows.push(row);
    const tr = document.createElement("tr");
    if (row.status === "error") tr.className = "error";
    tr.append(...[row.path, row.text, row.confidence, row.digits, row.error || row.status, row.review].map((v) => text("td", v)));
    body.append(tr);
    showFileStats(rows.length, files.length, performance.now() - start);
  }
  $("download").disabled = !rows.length;
  return { rows, seconds: (performance.now() - start) / 1000 };
}

/** A fresh results table for rows in these CSV columns, under these headings; returns its body. */
function startTable(csvColumns, headings, skipped) {
  rows = [];
  columns = csvColumns;
  unlisted = skipped;
  $("results").tHead.rows[0].replaceChildren(...headings.map((name) => text("th", name)));
  const body = $("results").tBodies[0];
  body.replaceChildren();
  return body;
}

function toRow(path, probabilities, error) {
  if (!probabilities) return { path, label: "", class_name: "", probability: "", top_k: "", status: "error", review: "", error };
  const { label, class_name, review } = answer(probabilities);
  const top = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3);
  return {
    path, label: String(label), class_name, probability: probabilities[label].toFixed(6),
    // class names, as mnist-predict's CSV has them
    top_k: top.map(([p, i]) => `${labels[i]}:${p.toFixed(6)}`).join(" "),
    status: "ok", review: review ? "yes" : "", error: "",
  };
}

function tableRow(row) {
  const tr = document.createElement("tr");
  if (row.status === "error") tr.className = "error";
  tr.append(...[row.path, row.class_name, row.probability, row.top_k, row.error || row.status, row.review].map((v) => text("td", v)));
  return tr;
}

function showFileStats(done, total, ms) {
  const errors = rows.filter((row) => row.status === "error").length, review = rows.filter((row) => row.review).length;
  const seen = new Map();
  for (const row of rows) seen.set(row.path, (seen.get(row.path) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([path]) => path);
  $("fileStats").textContent = `${done} of ${total} files, ${count(errors, "error")}, ${review} for review, ` +
    `${(done / (ms / 1000)).toFixed(0)} images/s` + (twice.length ? `; ${count(twice.length, "name")} given to ` +
    `several files (${twice.slice(0, 3).join(", ")}): choose their folder instead, to keep the folders in ` +
    "the paths" : "") +
    (unlisted ? `; ${count(unlisted, "file")} not listed (not images)` : "");
}

function count(n, noun) {
  return `${n} ${n === 1 ? noun : noun + "s"}`;
}

function toCsv(rows) {
  const quote = (v) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
  return [columns.join(","), ...rows.map((row) => columns.map((c) => quote(String(row[c]))).join(","))].join("\r\n") + "\r\n";
}

// ---- parity ----------------------------------------------------------------------------------------------

$("parity").addEventListener("click", async () => {
  $("parityResult").textContent = "Running the parity set…";
  const r = await checkParity();
  $("parityResult").textContent = `${r.rows} rows: max abs diff ${r.max_abs_diff.toExponential(2)}, ` +
    `argmax agreement ${r.argmax_agreement.toFixed(4)} against Keras (${r.seconds.toFixed(2)} s)`;
});

/** The export's parity inputs through this runtime, against the Keras outputs recorded at export. */
async function checkParity() {
  await ready;
  const start = performance.now();
  const parity = await (await fetch(EXPORT + "parity.json")).json();
  const inputs = floats(parity.inputs), expected = floats(parity.probabilities);
  const rows = parity.rows, classes = expected.length / rows, pixels = SIZE * SIZE;
  // Agreement counts the test digits only, as the export's gate does: an all-zero image is a near-tie.
  let maxAbsDiff = 0, agree = 0, tests = 0;
  for (let i = 0; i < rows; i += 256) {
    const n = Math.min(256, rows - i);
    const batch = inputs.subarray(i * pixels, (i + n) * pixels);
    const got = await infer(batch, n);
    for (let r = 0; r < n; r++) {
      const want = expected.subarray((i + r) * classes, (i + r + 1) * classes), have = got.subarray(r * classes, (r + 1) * classes);
      for (let c = 0; c < classes; c++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(want[c] - have[c]));
      if (parity.kinds[i + r] === "test") {
        tests++;
        if (argmax(want) === argmax(have)) agree++;
      }
    }
  }
  return { max_abs_diff: maxAbsDiff, argmax_agreement: tests ? agree / tests : 1, rows, seconds: (performance.now() - start) / 1000 };
}

// ---- helpers ---------------------------------------------------------------------------------------------

function showModel(digest) {
  const m = manifest.metrics ?? {};
  const items = [
    ["model", `${manifest.model} (${manifest.dataset})`],
    ["labels", labels.join(", ")],
    ["files become", preprocess() === "stretch" ? "28x28 as they are (stretch)" : "a cleaned digit, framed as MNIST (mnist)"],
    ["test accuracy", m.test_accuracy === undefined ? "-" : `${(m.test_accuracy * 100).toFixed(2)}%`],
    ["calibration", manifest.calibration ? `temperature ${manifest.calibration.temperature}`
      : manifest.calibration_skipped ? `none: ${manifest.calibration_skipped.skipped}` : "none"],
    ["review threshold", reviewThreshold(manifest.review_threshold)],
    ["model.onnx sha256", `${digest} (matches the manifest)`],
    ["line reader", lineSession ? `${lineReader.FILE}, weighed against the digit search when reading numbers`
      : "none (numbers are read by the digit search alone)"],
    ["a number's confidence", manifest.reading_calibration?.agree
      ? `fitted on ${manifest.reading_calibration.fitted_on} numbers of held-out digits; flagged below ${readingThreshold()}`
      : `bounded by the two readers'; flagged below ${readingThreshold()}`],
  ];
  $("model").replaceChildren(...items.flatMap(([k, v]) => [text("dt", k), text("dd", v)]));
}

function reviewThreshold(chosen) {
  if (!chosen) return `${FIXED_THRESHOLD} (the fixed default)`;
  if (chosen.threshold === null) return `${FIXED_THRESHOLD} (the fixed default): ${chosen.skipped}`;
  return `${chosen.threshold}: at most ${chosen.max_error} of unflagged answers wrong, with probability ` +
    `${1 - chosen.delta}, on images like ${chosen.n} labelled ones (${chosen.method})`;
}

function floats(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function text(tag, value) {
  return Object.assign(document.createElement(tag), { textContent: value });
}

function escapeHtml(value) {
  return value.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** For automation and tests: tests/test_web.py. */
async function predictImage(dataUrl) {
  await ready;
  try {
    const digit = prepare(await decode(await (await fetch(dataUrl)).blob()), preprocess());
    const { label, probabilities, review } = answer((await run([digit]))[0]);
    return { label, probabilities, review, digit: Array.from(digit) };
  } catch (error) {
    return { label: null, error: error instanceof NoDigit ? "no digit found" : error.message };
  }
}

/** For automation and tests: the reading of one image, and the candidates it was chosen from. */
async function readImage(dataUrl, length = null) {
  await ready;
  try {
    const r = await read(await decode(await (await fetch(dataUrl)).blob()), length);
    const seen = seenOf(r);
    return { text: r.text, confidence: r.confidence, digits: r.digits, boxes: r.boxes, reasons: r.reasons,
      inputs: r.inputs.map((input) => Array.from(input)),
      seen: { kind: seen.kind, sizes: seen.images.map((image) => (image.width ? [image.width, image.height] : [28, 28])) } };
  } catch (error) {
    return { text: null, error: error instanceof NoDigit ? error.message : error.message };
  }
}

clearPad();
window.mnist = { ready, predictImage, readImage, checkParity, predictFiles, rows: () => rows, csv: () => toCsv(rows) };
