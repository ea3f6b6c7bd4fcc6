// The status page as a reader sees it: the seeded checks in their groups with their states,
// uptime figures and 90 daily bars; the overall banner; dark mode; a phone's width.
//
// Expectations come from tests/tests/browser.rs (LOOKOUT_EXPECT), computed from the results it
// seeded. Screenshots: status-page.png, status-page-dark.png, status-page-phone.png.

import assert from "node:assert/strict";
import { BANNER, STATE_WORDS, assertLockedDown, expectations, run, shot, waitUntil } from "./lib.mjs";

const expected = expectations("LOOKOUT_EXPECT");

// What the page shows of one check (run in the page).
function readCheck(name) {
  const el = document.querySelector(`[data-check="${CSS.escape(name)}"]`);
  if (!el) {
    return null;
  }
  const uptime = {};
  for (const dt of el.querySelectorAll("dl.uptime dt")) {
    uptime[dt.textContent.trim()] = dt.nextElementSibling?.textContent.trim() ?? null;
  }
  return {
    state: el.querySelector("[data-state]")?.textContent.trim() ?? null,
    states: [...el.classList].filter((c) => /^s-[a-z]+$/.test(c)),
    uptime,
    titles: [...el.querySelectorAll(".bars title")].map((t) => t.textContent.trim()),
  };
}

// `YYYY-MM-DD` plus `n` days.
function addDays(date, n) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// Relative luminance of a CSS `rgb(...)`/`rgba(...)` colour, 0 (black) to 1 (white).
function luminance(css) {
  const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

await run("status-page", async ({ base, artifacts, newPage }) => {
  const page = await newPage({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  assertLockedDown(await page.goto(`${base}/`), "the status page");
  const names = expected.checks.map((c) => c.name);
  await waitUntil(
    page,
    `every seeded check on the page (${names.join(", ")})`,
    (names) => names.every((n) => document.querySelector(`[data-check="${CSS.escape(n)}"]`)),
    names,
    { describe: () => [...document.querySelectorAll("[data-check]")].map((e) => e.dataset.check).join(", ") || "none" },
  );

  assert.equal(
    (await page.locator("#overall").textContent()).trim(),
    BANNER[expected.overall],
    "the banner",
  );

  const groups = await page.evaluate(() =>
    [...document.querySelectorAll("section.group")].map((s) => ({
      name: s.querySelector("h2")?.textContent.trim() ?? null,
      checks: [...s.querySelectorAll("[data-check]")].map((e) => e.dataset.check).sort(),
    })),
  );
  assert.deepEqual(groups, expected.groups, "the groups, each with its checks");

  for (const check of expected.checks) {
    const shown = await page.evaluate(readCheck, check.name);
    assert.equal(shown.state, STATE_WORDS[check.state], `${check.name}: the state text`);
    assert.deepEqual(shown.states, [`s-${check.state}`], `${check.name}: the state class`);
    assert.deepEqual(shown.uptime, check.uptime, `${check.name}: the uptime figures`);

    // The 90-day bar: titles that start with their date, oldest first, from 89 days ago to
    // today; a title may stand for a run of days, so each seeded day's figure is in the title
    // of the last one that starts on or before it.
    const starts = shown.titles.map((t) => t.match(/^\d{4}-\d{2}-\d{2}/)?.[0]);
    assert.ok(shown.titles.length > 0, `${check.name}: no titles in the daily bar (.bars title)`);
    shown.titles.forEach((title, i) => {
      assert.ok(starts[i], `${check.name}: a daily bar's title does not start with a date: ${JSON.stringify(title)}`);
      assert.ok(i === 0 || starts[i] > starts[i - 1], `${check.name}: the daily bar's titles are not in date order: ${JSON.stringify(shown.titles)}`);
    });
    assert.equal(starts[0], expected.first_day, `${check.name}: the date of the daily bar's first title`);
    assert.ok(starts.at(-1) <= expected.today, `${check.name}: the daily bar's last title is after today: ${shown.titles.at(-1)}`);
    for (const day of check.days) {
      const title = shown.titles.findLast((_, i) => starts[i] <= day.date);
      assert.ok(
        title?.includes(day.figure),
        `${check.name}: the daily bar's title for ${day.date} is ${JSON.stringify(title)}, expected ${day.figure} in it`,
      );
    }
  }
  await shot(page, artifacts, "status-page");

  // Dark mode: the reader's setting alone turns the page dark.
  const background = (p) => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await background(page);
  const dark = await newPage({ viewport: { width: 1280, height: 900 }, colorScheme: "dark" });
  await dark.goto(`${base}/`);
  const darkBackground = await background(dark);
  assert.notEqual(darkBackground, light, "the body's background in dark mode");
  assert.ok(
    luminance(darkBackground) < luminance(light),
    `dark mode's background ${darkBackground} is not darker than light mode's ${light}`,
  );
  await shot(dark, artifacts, "status-page-dark");

  // A phone: nothing wider than the screen, so no sideways scrolling.
  const phone = await newPage({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  await phone.goto(`${base}/`);
  const widths = await phone.evaluate(() => ({
    scroll: document.scrollingElement.scrollWidth,
    inner: window.innerWidth,
    wider: [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}${e.className ? `.${String(e.className).replace(/ /g, ".")}` : ""}`),
  }));
  assert.ok(
    widths.scroll <= widths.inner,
    `on a 390 px wide phone the page is ${widths.scroll} px wide (scrolls sideways); wider than the screen: ${widths.wider.join(", ")}`,
  );
  await shot(phone, artifacts, "status-page-phone");
});
