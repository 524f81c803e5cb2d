// Open a page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// and wait until it sets window.sampflowResult; print that object as JSON on stdout.
//
// Usage: node drive.mjs URL TIMEOUT_SECONDS [CHROMIUM]
// Exit status: 0 when the page reported, 2 on timeout or browser failure.
import { chromium } from "playwright-core";

const [url, timeoutText, executable] = process.argv.slice(2);
const timeout = Number(timeoutText || "60") * 1000;
const browser = await chromium.launch({
    executablePath: executable || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
});
let status = 0;
try {
    const page = await browser.newPage();
    page.on("console", (m) => console.error(`[console.${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => console.error(`[pageerror] ${e.message}`));
    page.on("requestfailed", (r) => console.error(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(url);
    const handle = await page.waitForFunction(() => window.sampflowResult, null, { timeout });
    console.log(JSON.stringify(await handle.jsonValue()));
} catch (e) {
    console.error(`drive.mjs: ${e}`);
    status = 2;
} finally {
    await browser.close();
}
process.exit(status);
