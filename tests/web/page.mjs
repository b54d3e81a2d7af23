// Opens the page in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM, through playwright-core):
// what tests/web/drive.mjs, tests/web/read.mjs and bench/web_page.mjs share.
import { createRequire } from "node:module";

const require = createRequire(new URL("../../deploy/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

/** {browser, page, result}: the page at `url`, ready (its model loaded). result holds ready_ms and, as the page
 * runs, console_errors (errors it logged or threw), downloads (each response's path and body size) and
 * transferred (the bytes each took on the wire: fewer where the server compressed it). */
export async function openPage(url, viewport = { width: 1200, height: 1000 }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const result = { downloads: {}, transferred: {}, console_errors: [] };
    const page = await browser.newPage({ viewport });
    page.on("console", (message) => message.type() === "error" && result.console_errors.push(message.text()));
    page.on("pageerror", (error) => result.console_errors.push(String(error)));
    page.on("response", async (response) => {
      try {
        const path = new URL(response.url()).pathname, size = (await response.body()).length;
        result.downloads[path] = size;
        result.transferred[path] = Number((await response.allHeaders())["content-length"] ?? size);
      } catch {
        // a redirect or an aborted request has no body
      }
    });
    await page.goto(url);
    Object.assign(result, await page.evaluate(() => window.mnist.ready));
    return { browser, page, result };
  } catch (error) {
    await browser.close();
    throw error;
  }
}
