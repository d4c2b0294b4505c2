// The console in a real headless Chromium: sign in, list methods, call one, see the result,
// subscribe, publish, see the event, send a command; then a screenshot.
//
// usage: node console.cjs PLAYWRIGHT_CORE_DIR URL SCREENSHOT_PNG
"use strict";
const [moduleDir, url, screenshot] = process.argv.slice(2);
const { chromium } = require(moduleDir);
const os = require("os");
const fs = require("fs");
const path = require("path");

const step = (what) => console.log("step: " + what);

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "nuropb-console-"));
  // A fresh profile directory (Playwright passes it as --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 760 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(15000);
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("response", (r) => { if (r.status() >= 400) errors.push(r.status() + " " + r.url()); });
    await page.goto(url);

    step("sign in");
    await page.fill("#token", "console-token");
    await page.click("#connect");
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected"));

    step("list the methods of quick-example");
    await page.click("#services li.pick >> text=quick-example");
    await page.waitForSelector('#methods li[data-method="test_method"]');

    step("call test_method");
    await page.click('#methods li[data-method="test_method"]');
    await page.fill('#params input[name="param1"]', "value1");
    await page.fill('#params input[name="param2"]', '{"param2a": "value2a"}');
    await page.click("#call-button");
    await page.waitForFunction(() => document.getElementById("result").textContent.includes("response from test_method"));
    const result = JSON.parse(await page.textContent("#result"));
    if (result.param1 !== "value1" || result.param2.param2a !== "value2a") throw new Error("unexpected result " + JSON.stringify(result));

    step("call a method whose service checks the token");
    await page.click('#methods li[data-method="test_requires_user_claims"]');
    await page.click("#call-button");
    await page.waitForFunction(() => document.getElementById("result").textContent.includes("hello test_user"));

    step("an error is shown as one");
    await page.click('#methods li[data-method="test_method"]');
    await page.click("#call-button");
    await page.waitForSelector("#result.error");

    step("subscribe");
    await page.fill("#pattern", "console.#");
    await page.click("#subscribe button");
    await page.waitForSelector("#subscriptions li >> text=subscribed: console.#");

    step("publish and see the event");
    await page.fill("#publish-topic", "console.demo");
    await page.fill("#publish-event", '{"seen": "live"}');
    await page.click("#publish button");
    await page.waitForSelector('#events li >> text=console.demo  {"seen":"live"}');

    step("send a command");
    await page.click('#methods li[data-method="test_method"]');
    await page.fill('#params input[name="param1"]', "value1");
    await page.fill('#params input[name="param2"]', "{}");
    await page.click("#command-button");
    await page.waitForFunction(() => document.getElementById("result").textContent.includes("correlation_id"));

    step("test_service's methods");
    await page.click("#services li.pick >> text=test_service");
    await page.waitForSelector('#methods li[data-method="test_requires_encryption"]');
    await page.click('#methods li[data-method="test_method"]');
    await page.click("#call-button");
    await page.waitForFunction(() => document.getElementById("result").textContent.includes("response from test_service.test_method"));

    if (errors.length) throw new Error("errors in the page: " + errors.join("; "));
    await page.screenshot({ path: screenshot });
    console.log("ok");
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error("console test failed: " + (e && e.stack || e));
  process.exit(1);
});
