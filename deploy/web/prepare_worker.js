// One of the page's preparers: decodes and prepares dropped files off the page's thread, one core each
// (app.js starts one per core). In: {id, file, mode}; out: {id, digit} or {id, error}, as decode.prepareFile.
import { prepareFile } from "./decode.js";

self.onmessage = async ({ data: { id, file, mode } }) => {
  const result = await prepareFile(file, mode);
  self.postMessage({ id, ...result }, result.digit ? [result.digit.buffer] : []);
};
