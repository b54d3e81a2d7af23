// The page's two ways of preparing files, for tests/test_web.py: each PNG of DIR through
// window.mnist.predictImage (the page's thread), then all of them dropped (the preparing workers).
//   node tests/web/prepare.mjs URL DIR   ->   {"images": {name: {label, digit}}, "csv": the dropped rows}
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { openPage } from "./page.mjs";

const [url, dir] = process.argv.slice(2);
const { browser, page, result } = await openPage(url);
try {
  const names = readdirSync(dir).sort();
  result.images = {};
  for (const name of names) {
    const dataUrl = `data:image/png;base64,${readFileSync(join(dir, name)).toString("base64")}`;
    result.images[name] = await page.evaluate((u) => window.mnist.predictImage(u), dataUrl);
  }
  await page.setInputFiles("#files", names.map((name) => join(dir, name)));
  await page.waitForFunction(() => window.mnist.lastRun);
  result.csv = await page.evaluate(async () => (await window.mnist.lastRun, window.mnist.csv()));
  result.model_info = await page.textContent("#model");
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
