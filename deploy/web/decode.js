// A file to the grayscale image preprocess.js takes, and to the model's 28x28 input: what the page does to
// each dropped file, on the page itself and in prepare_worker.js. Needs the browser's decoders
// (createImageBitmap, OffscreenCanvas), which a page and a worker both have and node does not.
import { NoDigit, prepare, toGrayscale } from "./preprocess.js";

/** An image file (a Blob) to a 2-D uint8 grayscale image, as Pillow's L of the stored pixels. */
export async function decode(blob) {
  // No colour management and no premultiplied alpha: the pixels as stored, as Pillow reads them.
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const { width, height } = bitmap;
  // one canvas for every file: a new one per file costs more than the decoding of a small image
  if (!canvas) {
    canvas = new OffscreenCanvas(width, height);
    context = canvas.getContext("2d", { willReadFrequently: true });
  } else if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width; // which clears it
    canvas.height = height;
  } else {
    context.clearRect(0, 0, width, height);
  }
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = context.getImageData(0, 0, width, height);
  return toGrayscale(data, width, height);
}

let canvas = null, context = null;

/**
 * {digit: the model's 28x28 uint8 input} or {error: the row's one-line reason}, as mnist-predict words it.
 * `mode`: preprocess.prepare's ("mnist" for digits, "stretch" for a Fashion-MNIST export).
 */
export async function prepareFile(blob, mode = "mnist") {
  try {
    return { digit: prepare(await decode(blob), mode) };
  } catch (error) {
    return { error: error instanceof NoDigit ? "no digit found" : `not an image the browser can read: ${error.message}` };
  }
}
