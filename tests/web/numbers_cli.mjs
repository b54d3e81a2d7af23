// Runs deploy/web/numbers.js on grayscale images from stdin, for tests/test_web.py to compare with
// mnist_predict.numbers. In: per image, uint32 LE width and height, width*height bytes, uint32 LE rows, then
// rows x 10 float32 LE probabilities for the candidates (the model's, computed in Python on Python's own
// candidates; when the candidates agree pixel for pixel, they are the page's too), int32 LE min and max
// of --length (0 0: none), then uint32 LE lines, and per line uint32 LE columns and classes and that many
// float32 LE line-reader probabilities (0 lines: no line reader). Out: one JSON line per image: the
// candidates, their pixels (base64), the line images (base64) and where they lie, the search's reading, and
// the reading weighed with the line reader's: with argv[2] (a reading_calibration, JSON), the odd images' weighed
// with it.
import { readFileSync } from "node:fs";
import { NoNumber, choose, layoutOf, withLineReading } from "../../deploy/web/numbers.js";

const input = readFileSync(0);
let offset = 0;
const u32 = () => ((offset += 4), input.readUInt32LE(offset - 4));
const lines = [];
const calibration = process.argv[2] ? JSON.parse(process.argv[2]) : null;
for (let image = 0; offset < input.length; image++) {
  const width = u32(), height = u32();
  const data = Uint8Array.from(input.subarray(offset, offset + width * height));
  offset += width * height;
  const rows = u32();
  const probabilities = [];
  for (let r = 0; r < rows; r++) {
    probabilities.push(Array.from({ length: 10 }, (_, c) => input.readFloatLE(offset + (r * 10 + c) * 4)));
  }
  offset += rows * 40;
  const low = input.readInt32LE(offset), high = input.readInt32LE(offset + 4);
  offset += 8;
  const lineOutputs = [];
  for (let line = u32(); line > 0; line--) {
    const columns = u32(), classes = u32();
    lineOutputs.push(Array.from({ length: columns },
      (_, r) => Array.from({ length: classes }, (_, c) => input.readFloatLE(offset + (r * classes + c) * 4))));
    offset += columns * classes * 4;
  }
  try {
    const layout = layoutOf({ width, height, data }, true);
    const out = {
      status: "ok", atoms: layout.atoms,
      candidates: layout.candidates.map((c) => ({ line: c.line, start: c.start, stop: c.stop, box: c.box, prior: c.prior })),
      inputs: Buffer.concat(layout.inputs.map((a) => Buffer.from(a))).toString("base64"),
      lines: layout.lines.map(({ image, place }) => ({ width: image.width, place, pixels: Buffer.from(image.data).toString("base64") })),
    };
    const length = low ? [low, high] : null;
    if (rows === layout.inputs.length) out.reading = choose(layout, probabilities, length);
    if (out.reading) {
      out.weighed = withLineReading(out.reading, layout, probabilities, lineOutputs, length, image % 2 ? calibration : null);
    }
    lines.push(JSON.stringify(out));
  } catch (error) {
    if (!(error instanceof NoNumber)) process.stderr.write(`${error.stack}\n`);
    lines.push(JSON.stringify({ status: error instanceof NoNumber ? "no number" : "error", error: error.message }));
  }
}
process.stdout.write(lines.join("\n") + "\n");
