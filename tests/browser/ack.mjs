// Acknowledging from a message: the link an email carried, opened in a browser as a person on
// call would. The GET shows the alert and a button and acknowledges nothing (mail scanners
// fetch links); the button acknowledges and the page says by whom; the same link again says
// it was already acknowledged; a changed token is refused with a page that says why.
//
// LOOKOUT_EXPECT (from tests/tests/ack_link.rs): {link, tampered, alert_id, summary, acked_by,
// read_token}: the link read from the email, the same with its signature changed, the alert it
// names, its summary as the API gives it, who a link acknowledges as, and a read token for the
// API. Screenshots: ack-confirm.png, ack-done.png, ack-again.png, ack-tampered.png.

import assert from "node:assert/strict";
import { assertLockedDown, event, expectations, run, shot } from "./lib.mjs";

const expect = expectations("LOOKOUT_EXPECT");

// Who acknowledged the alert, as the API says (null: nobody yet).
async function ackedBy(base) {
  const resp = await fetch(`${base}/api/v1/alerts?state=firing`, {
    headers: { authorization: `Bearer ${expect.read_token}` },
  });
  assert.equal(resp.status, 200, "GET /api/v1/alerts");
  const alert = (await resp.json()).alerts.find((a) => a.id === expect.alert_id);
  assert.ok(alert, `alert ${expect.alert_id} is no longer firing`);
  return alert.acked_by;
}

// The page's title and main text, whitespace folded.
async function shown(page) {
  const fold = (s) => (s ?? "").replace(/\s+/g, " ").trim();
  return {
    title: fold(await page.locator("h1").textContent()),
    text: fold(await page.locator("main").textContent()),
  };
}

await run("ack", async ({ base, artifacts, newPage }) => {
  assert.ok(expect.link.startsWith(`${base}/ack/`), `the link ${expect.link} is not under ${base}`);
  const page = await newPage({ viewport: { width: 800, height: 600 } });

  // Opening the link asks; it does not acknowledge.
  const confirm = await page.goto(expect.link);
  assert.equal(confirm.status(), 200, "GET of the link");
  assertLockedDown(confirm, "the confirmation page");
  assert.equal(confirm.headers()["cache-control"], "no-store");
  let seen = await shown(page);
  assert.equal(seen.title, "Acknowledge this alert?");
  assert.ok(seen.text.includes(expect.summary), `the page shows ${seen.text}`);
  assert.ok(seen.text.includes("Firing since"), `the page shows ${seen.text}`);
  await shot(page, artifacts, "ack-confirm");
  assert.equal(await ackedBy(base), null, "opening the link acknowledged the alert");
  event("confirm-page-shown");

  // The button acknowledges, and the page says so and as whom.
  const [posted] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST"),
    page.getByRole("button", { name: "Acknowledge" }).click(),
  ]);
  assert.equal(posted.status(), 200, "the button's POST");
  await page.waitForLoadState();
  seen = await shown(page);
  assert.equal(seen.title, "Acknowledged");
  assert.ok(seen.text.includes(`Acknowledged by ${expect.acked_by}.`), `the page shows ${seen.text}`);
  await shot(page, artifacts, "ack-done");
  assert.equal(await ackedBy(base), expect.acked_by, "the API after the button");
  event("acknowledged");

  // The same link again: already acknowledged, and no button.
  const again = await page.goto(expect.link);
  assert.equal(again.status(), 200, "GET of the link again");
  seen = await shown(page);
  assert.equal(seen.title, "Already acknowledged");
  assert.ok(seen.text.includes(`Already acknowledged by ${expect.acked_by}.`), `the page shows ${seen.text}`);
  assert.equal(await page.locator("form, button").count(), 0, "a button on the acknowledged page");
  await shot(page, artifacts, "ack-again");

  // A changed token: refused with 403 and a sentence, nothing of the alert shown.
  const refused = await page.goto(expect.tampered);
  assert.equal(refused.status(), 403, "GET of a changed link");
  assertLockedDown(refused, "the refusal page");
  seen = await shown(page);
  assert.equal(seen.title, "Refused");
  assert.ok(
    seen.text.includes("this acknowledge link was not made by this Lookout, or has been changed"),
    `the page shows ${seen.text}`,
  );
  assert.ok(!seen.text.includes(expect.summary), "the refusal shows the alert");
  assert.equal(await page.locator("form, button").count(), 0, "a button on the refusal");
  await shot(page, artifacts, "ack-tampered");
});
