// Drives the page in headless Chromium (Debian's /usr/bin/chromium, through playwright-core) and prints one
// JSON object of what it saw, for tests/test_web.py to assert on.
//   node tests/web/drive.mjs URL OUT_DIR DROP_DIR FOLDER_DIR IMAGE_DIR...
// Each IMAGE_DIR's PNGs go through window.mnist.predictImage one by one; DROP_DIR's through the file input, as
// a person's dropped files do; FOLDER_DIR through the folder chooser, subfolders and all. OUT_DIR receives
// web-page.png, a screenshot with a drawn digit.
import { readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { openPage } from "./page.mjs";

const [url, outDir, dropDir, folderDir, ...imageDirs] = process.argv.slice(2);
const { browser, page, result } = await openPage(url);
try {
  result.cross_origin_isolated = await page.evaluate(() => self.crossOriginIsolated);
  result.status_line = await page.textContent("#status");
  result.draw_heading = await page.textContent("#drawWhat");
  result.model_info = await page.textContent("#model");

  // Time to the first prediction after the page started loading (performance.now() counts from there).
  const dataUrl = (path) => `data:image/png;base64,${readFileSync(path).toString("base64")}`;
  const pngs = (dir) => readdirSync(dir).sort().map((name) => join(dir, name));
  result.first_prediction_ms = await page.evaluate(async (first) => {
    await window.mnist.predictImage(first);
    return performance.now();
  }, dataUrl(pngs(imageDirs[0])[0]));

  // Draw a 0 and a 1 with the mouse, as a person would, and read what the page shows.
  const pad = await page.locator("#pad").boundingBox();
  const draw = async (points) => {
    await page.mouse.move(pad.x + points[0][0], pad.y + points[0][1]);
    await page.mouse.down();
    for (const [x, y] of points.slice(1)) await page.mouse.move(pad.x + x, pad.y + y, { steps: 2 });
    await page.mouse.up();
    await page.waitForTimeout(300); // the page predicts after the next animation frame
    return page.textContent("#predicted");
  };
  const ellipse = Array.from({ length: 41 }, (_, i) => [140 + 55 * Math.sin((i / 40) * 2 * Math.PI), 140 - 85 * Math.cos((i / 40) * 2 * Math.PI)]);
  result.drawn = { zero: await draw(ellipse) };
  result.zero_bars = await page.locator("#bars").textContent();
  await page.screenshot({ path: join(outDir, "web-page-zero.png") });
  await page.click("#clear");
  result.drawn.one = await draw([[150, 50], [146, 140], [142, 230]]);

  result.parity = await page.evaluate(() => window.mnist.checkParity());
  result.parity_shown = await page.click("#parity").then(() => page.waitForFunction(
    () => document.querySelector("#parityResult").textContent.includes("max abs diff"))).then(() => page.textContent("#parityResult"));

  // Each image through predictImage: label, review flag and the prepared 28x28 digit.
  result.images = {};
  for (const dir of imageDirs) {
    const seen = (result.images[basename(dir)] = {});
    for (const path of pngs(dir)) seen[basename(path)] = await page.evaluate((u) => window.mnist.predictImage(u), dataUrl(path));
  }

  if (dropDir) {
    const files = pngs(dropDir);
    await page.setInputFiles("#files", files);
    await page.waitForFunction(() => window.mnist.lastRun);
    const run = await page.evaluate(async () => {
      const { rows, seconds } = await window.mnist.lastRun;
      return { rows: rows.length, seconds, csv: window.mnist.csv() };
    });
    result.dropped = { ...run, files: files.length, images_per_second: files.length / run.seconds };
    result.file_stats = await page.textContent("#fileStats");
  }
  if (folderDir) {
    await page.evaluate(() => (window.mnist.lastRun = null));
    await page.setInputFiles("#folder", folderDir);
    await page.waitForFunction(() => window.mnist.lastRun);
    result.folder = await page.evaluate(async () => {
      await window.mnist.lastRun;
      return { csv: window.mnist.csv(), stats: document.querySelector("#fileStats").textContent };
    });
  }
  await page.click("#clear");
  await draw(ellipse);
  await page.screenshot({ path: join(outDir, "web-page.png"), fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
