// Drives the page in headless Chromium for bench/web_page.py and prints one JSON object.
//   node bench/web_page.mjs URL REPEATS FILE...
// The files are chosen in the page's file input, as a person's dropped files are, REPEATS times; each run's
// seconds are the page's own (window.mnist.lastRun: decoding, preprocess.js, onnxruntime-web and the table).
// Also: every response's size, the page's total download.
import { openPage } from "../tests/web/page.mjs";

const [url, repeats, ...files] = process.argv.slice(2);
const { browser, page, result } = await openPage(url);
result.runs = [];
try {
  result.status = await page.textContent("#status");
  for (let i = 0; i < Number(repeats); i++) {
    await page.evaluate(() => {
      window.mnist.lastRun = null;
      document.querySelector("#files").value = "";
    });
    await page.setInputFiles("#files", files);
    await page.waitForFunction(() => window.mnist.lastRun);
    result.runs.push(await page.evaluate(async () => {
      const { rows, seconds } = await window.mnist.lastRun;
      return { rows: rows.length, errors: rows.filter((row) => row.status === "error").length, seconds,
               labels: Object.fromEntries(rows.map((row) => [row.path, String(row.label ?? "")])) };
    }));
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
