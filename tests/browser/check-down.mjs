// A check going down shows on the open status page without a reload: the page's script reads
// the API every 5 s and updates the check's state and the banner in place.
//
// The check is LOOKOUT_CHECK, the only one on the page, up when the script starts. The script
// prints `@@ check-up-on-page` once the page shows it up; tests/tests/browser.rs then makes its
// target fail. Screenshot: check-down.png.

import assert from "node:assert/strict";
import { BANNER, STATE_WORDS, event, run, shot, waitUntil } from "./lib.mjs";

const check = process.env.LOOKOUT_CHECK;
if (!check) {
  throw new Error("LOOKOUT_CHECK is not set: run this script through tests/tests/browser.rs");
}

// The check's state text and state classes, and the banner (run in the page).
function shown(name) {
  const el = document.querySelector(`[data-check="${CSS.escape(name)}"]`);
  return JSON.stringify({
    state: el?.querySelector("[data-state]")?.textContent.trim() ?? null,
    classes: el ? [...el.classList].filter((c) => /^s-/.test(c)) : null,
    banner: document.getElementById("overall")?.textContent.trim() ?? null,
  });
}

function showsState([name, words, state]) {
  const el = document.querySelector(`[data-check="${CSS.escape(name)}"]`);
  return (
    el?.querySelector("[data-state]")?.textContent.trim() === words && el.classList.contains(`s-${state}`)
  );
}

await run("check-down", async ({ base, artifacts, newPage }) => {
  const page = await newPage({ viewport: { width: 1280, height: 900 } });
  let navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) {
      navigations += 1;
    }
  });
  await page.goto(`${base}/`);
  await waitUntil(page, `${check} shown up`, showsState, [check, STATE_WORDS.up, "up"], {
    describe: shown,
  });
  assert.equal((await page.locator("#overall").textContent()).trim(), BANNER.up, "the banner");

  // Anything the page keeps until it reloads.
  await page.evaluate(() => {
    window.__marker = 1;
  });
  const before = navigations;
  event("check-up-on-page");

  const started = Date.now();
  await waitUntil(page, `${check} shown down without a reload`, showsState, [check, STATE_WORDS.down, "down"], {
    timeout: 15_000,
    describe: shown,
  });
  console.log(`${check} shown down ${Date.now() - started} ms after its target failed`);
  assert.equal(await page.evaluate(() => window.__marker), 1, "the page was reloaded");
  assert.equal(navigations, before, "the page navigated");
  await waitUntil(page, "the banner saying so", (text) => document.getElementById("overall")?.textContent.trim() === text, BANNER.down, {
    describe: shown,
  });
  await shot(page, artifacts, "check-down");
});
