// Runs deploy/web/preprocess.js on grayscale images from stdin, for tests/test_web.py to compare with
// mnist_predict.images. In: per image, uint32 LE width, uint32 LE height, width*height bytes.
// Out: per image, one status byte (0 a digit, 1 no digit, 2 another error) and the 784 bytes of the digit.
// Argument: prepare's mode, "mnist" (the default) or "stretch".
import { readFileSync } from "node:fs";
import { prepare, NoDigit, SIZE } from "../../deploy/web/preprocess.js";

const mode = process.argv[2] ?? "mnist";
const input = readFileSync(0);
const chunks = [];
for (let offset = 0; offset < input.length; ) {
  const width = input.readUInt32LE(offset), height = input.readUInt32LE(offset + 4);
  const data = new Uint8Array(input.buffer, input.byteOffset + offset + 8, width * height);
  offset += 8 + width * height;
  const out = new Uint8Array(1 + SIZE * SIZE);
  try {
    out.set(prepare({ width, height, data: Uint8Array.from(data) }, mode), 1);
  } catch (error) {
    out[0] = error instanceof NoDigit ? 1 : 2;
    if (out[0] === 2) process.stderr.write(`${error.stack}\n`);
  }
  chunks.push(out);
}
process.stdout.write(Buffer.concat(chunks));
