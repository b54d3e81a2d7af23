// Drives the page's number reading in headless Chromium and prints one JSON object of what it saw, for
// tests/test_web.py.   node tests/web/read.mjs URL OUT_DIR STROKES_JSON IMAGE_DIR
// Draws the polylines of STROKES_JSON on the pad with the mouse and reads the number the page shows; reads
// each PNG of IMAGE_DIR through window.mnist.readImage, then all of them as dropped files with "Read whole
// numbers" ticked. OUT_DIR receives web-page-number.png.
import { readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { openPage } from "./page.mjs";

const [url, outDir, strokesFile, imageDir] = process.argv.slice(2);
const { browser, page, result } = await openPage(url);
try {
  result.draw_heading = await page.textContent("#drawWhat");
  result.threshold = await page.inputValue("#threshold");
  result.model_info = await page.textContent("#model");

  // the strokes are in the pad's own pixels; the page may show it smaller
  const pad = await page.locator("#pad").boundingBox();
  const size = await page.evaluate(() => [document.querySelector("#pad").width, document.querySelector("#pad").height]);
  const at = ([x, y]) => [pad.x + (x * pad.width) / size[0], pad.y + (y * pad.height) / size[1]];
  for (const line of JSON.parse(readFileSync(strokesFile, "utf8"))) {
    await page.mouse.move(...at(line[0]));
    await page.mouse.down();
    for (const point of line.slice(1)) await page.mouse.move(...at(point), { steps: 2 });
    await page.mouse.up();
  }
  await page.waitForTimeout(200);
  await page.evaluate(() => new Promise(requestAnimationFrame)); // the last stroke's reading
  await page.waitForFunction(() => document.querySelector("#number"));
  await page.waitForTimeout(300);
  result.drawn = await page.textContent("#number");
  result.reading_shown = await page.textContent("#reading");
  await page.screenshot({ path: join(outDir, "web-page-number.png") });

  const files = readdirSync(imageDir).sort().map((name) => join(imageDir, name));
  result.images = {};
  for (const path of files) {
    const dataUrl = `data:image/png;base64,${readFileSync(path).toString("base64")}`;
    result.images[basename(path)] = await page.evaluate((u) => window.mnist.readImage(u), dataUrl);
  }
  await page.check("#readNumbers");
  await page.setInputFiles("#files", files);
  await page.waitForFunction(() => window.mnist.lastRun);
  result.dropped = await page.evaluate(async () => {
    const { rows } = await window.mnist.lastRun;
    return { rows: rows.length, csv: window.mnist.csv() };
  });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
