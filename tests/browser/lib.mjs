// What the browser test scripts share: Chromium from Debian's package driven by playwright-core,
// the command line (`node <script>.mjs <base url> <artifacts dir>`), waiting with a deadline and
// a clear message, screenshots, and the events the Rust test reacts to.
//
// A script fails by throwing: node prints the error and exits with 1, and tests/tests/browser.rs
// fails with what the script printed. It prints `@@ <event>` lines on stdout for the Rust test
// to act on (switching a target down, say).

import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

// Debian's chromium package; Playwright's own browser builds are never downloaded.
export const CHROMIUM = "/usr/bin/chromium";

// Longest wait for anything a page should show, in ms.
export const WAIT_MS = 10_000;

// The state words of the page's markup contract, by the API's state name.
export const STATE_WORDS = {
  up: "✓ Up",
  down: "✕ Down",
  pending: "… Pending",
  unknown: "? Unknown",
};

// The banner (`#overall`) of the page's markup contract, by the API's `overall`.
export const BANNER = {
  up: "All systems operational",
  down: "Some systems are down",
  degraded: "Some systems have no recent results",
};

// Runs `body({ browser, base, artifacts, newPage })` with a fresh headless Chromium, closed
// afterwards whatever happens. Pages made with `newPage` fail the script on an uncaught page
// error or an error on the console (a Content-Security-Policy violation is one), and are
// screenshotted as `failed-<script>-<n>.png` when the body throws.
// Fails unless `response` (of page.goto) carries a Content-Security-Policy that allows no
// inline script and no framing by other sites.
export function assertLockedDown(response, what) {
  const csp = response.headers()["content-security-policy"] ?? "";
  const directive = (name) => csp.split(";").map((d) => d.trim()).find((d) => d.startsWith(`${name} `));
  if (directive("script-src") !== "script-src 'self'" || directive("frame-ancestors") !== "frame-ancestors 'none'") {
    throw new Error(`${what}: Content-Security-Policy ${JSON.stringify(csp)}`);
  }
  if (response.headers()["x-content-type-options"] !== "nosniff") {
    throw new Error(`${what}: no X-Content-Type-Options: nosniff`);
  }
}

export async function run(script, body) {
  const [base, artifacts] = process.argv.slice(2);
  if (!base || !artifacts) {
    throw new Error(`usage: node ${script}.mjs <base url> <artifacts dir>`);
  }
  mkdirSync(artifacts, { recursive: true });
  // A failure's screenshots from an earlier run would mislead.
  for (const f of readdirSync(artifacts).filter((f) => f.startsWith(`failed-${script}-`))) {
    rmSync(join(artifacts, f));
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The tests run as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox"],
    timeout: 30_000,
  });
  const pages = [];
  const errors = [];
  const newPage = async (options = {}) => {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
    page.on("console", (m) => {
      // Refusals the tests ask for (a wrong login is a 401 page) are answers, not errors.
      if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 40[134]/.test(m.text())) {
        errors.push(`${page.url()}: console: ${m.text()}`);
      }
    });
    pages.push(page);
    return page;
  };
  try {
    await body({ browser, base: base.replace(/\/$/, ""), artifacts, newPage });
    if (errors.length > 0) {
      throw new Error(`script errors on the pages:\n${errors.join("\n")}`);
    }
  } catch (e) {
    for (const [i, page] of pages.entries()) {
      await page
        .screenshot({ path: join(artifacts, `failed-${script}-${i}.png`), fullPage: true })
        .catch(() => {});
    }
    throw e;
  } finally {
    await browser.close();
  }
}

// Waits until `predicate(arg)`, run in the page, is true; fails with `what` and `describe(arg)`
// (also run in the page: what it shows instead) after `timeout` ms.
export async function waitUntil(page, what, predicate, arg, { timeout = WAIT_MS, describe } = {}) {
  try {
    await page.waitForFunction(predicate, arg, { timeout, polling: 100 });
  } catch (e) {
    const shown = describe ? await page.evaluate(describe, arg).catch((x) => String(x)) : "";
    throw new Error(`${what}: not within ${timeout} ms${shown ? `; the page shows ${shown}` : ""}\n(${e.message.split("\n")[0]})`);
  }
}

// Saves a screenshot of the whole page as `<artifacts>/<name>.png`.
export async function shot(page, artifacts, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

// Tells the Rust test that `name` happened.
export function event(name) {
  console.log(`@@ ${name}`);
}

// The expectations the Rust test computed, from the JSON in environment variable `name`.
export function expectations(name) {
  const text = process.env[name];
  if (!text) {
    throw new Error(`${name} is not set: run this script through tests/tests/browser.rs`);
  }
  return JSON.parse(text);
}
