// Runs deploy/web/numbers.js on grayscale images from stdin, for tests/test_web.py to compare with
// mnist_predict.numbers. In: per image, uint32 LE width and height, width*height bytes, uint32 LE rows, then
// rows x 10 float32 LE probabilities for the candidates (the model's, computed in Python on Python's own
// candidates; when the candidates agree pixel for pixel, they are the page's too), and int32 LE min and max
// of --length (0 0: none). Out: one JSON line per image: the candidates, their pixels (base64) and the reading.
import { readFileSync } from "node:fs";
import { NoNumber, choose, layoutOf } from "../../deploy/web/numbers.js";

const input = readFileSync(0);
let offset = 0;
const u32 = () => ((offset += 4), input.readUInt32LE(offset - 4));
const lines = [];
while (offset < input.length) {
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
  try {
    const layout = layoutOf({ width, height, data });
    const out = {
      status: "ok", atoms: layout.atoms,
      candidates: layout.candidates.map((c) => ({ line: c.line, start: c.start, stop: c.stop, box: c.box, prior: c.prior })),
      inputs: Buffer.concat(layout.inputs.map((a) => Buffer.from(a))).toString("base64"),
    };
    if (rows === layout.inputs.length) out.reading = choose(layout, probabilities, low ? [low, high] : null);
    lines.push(JSON.stringify(out));
  } catch (error) {
    if (!(error instanceof NoNumber)) process.stderr.write(`${error.stack}\n`);
    lines.push(JSON.stringify({ status: error instanceof NoNumber ? "no number" : "error", error: error.message }));
  }
}
process.stdout.write(lines.join("\n") + "\n");
