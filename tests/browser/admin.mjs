// The admin pages need the admin token: without a login they lead to the login form, a wrong
// token is refused with a message, the right one (LOOKOUT_ADMIN_TOKEN) opens the Alerts page,
// and logging out closes them again. Logged in, the live log tail shows a matching line as it
// is ingested (as the seeding agent, LOOKOUT_SEEDER and LOOKOUT_SEEDER_TOKEN), and not the
// line that does not match.
//
// Screenshots: admin-login.png, admin-login-wrong.png, admin-alerts.png, admin-logs-tail.png.

import assert from "node:assert/strict";
import { assertLockedDown, run, shot } from "./lib.mjs";

const token = process.env.LOOKOUT_ADMIN_TOKEN;
const seeder = process.env.LOOKOUT_SEEDER;
const seederToken = process.env.LOOKOUT_SEEDER_TOKEN;
if (!token || !seeder || !seederToken) {
  throw new Error("LOOKOUT_ADMIN_TOKEN, LOOKOUT_SEEDER and LOOKOUT_SEEDER_TOKEN must be set: run this script through tests/tests/browser.rs");
}

// Ships log lines as the seeding agent, through the real ingest endpoint.
async function shipLogs(base, texts) {
  const now = new Date().toISOString();
  const body = JSON.stringify({
    version: 1,
    agent: seeder,
    batch_id: `tail-${Date.now()}`,
    records: texts.map((text) => ({ kind: "log", time: now, source: "/var/log/app.log", level: "error", text })),
  });
  const resp = await fetch(`${base}/v1/ingest`, {
    method: "POST",
    headers: { Authorization: `Bearer ${seederToken}`, "Content-Type": "application/json", "Content-Encoding": "identity" },
    body,
  });
  assert.equal(resp.status, 200, `ingest answered ${resp.status}: ${await resp.text()}`);
}

await run("admin", async ({ base, artifacts, newPage }) => {
  const page = await newPage({ viewport: { width: 1280, height: 900 } });
  const path = () => new URL(page.url()).pathname;
  const form = page.locator("form:has(input[name=token])");
  const logIn = async (value) => {
    await form.locator("input[name=token]").fill(value);
    await Promise.all([page.waitForNavigation(), form.locator("[type=submit]").click()]);
  };

  // Not logged in: the login form.
  assertLockedDown(await page.goto(`${base}/admin/alerts`), "the login page");
  assert.equal(path(), "/login", "where /admin/alerts leads without a login");
  await form.locator("input[name=token]").waitFor({ state: "visible" });
  await shot(page, artifacts, "admin-login");

  // A wrong token: refused, with a message, and still the form.
  await logIn(`${token}-wrong`);
  assert.equal(path(), "/login", "where a wrong token leads");
  assert.ok((await page.locator("body").textContent()).includes("Wrong admin token"), "the message for a wrong token");
  await form.locator("input[name=token]").waitFor({ state: "visible" });
  await shot(page, artifacts, "admin-login-wrong");

  // The right token: the page asked for, with a way to log out.
  await logIn(token);
  assert.equal(path(), "/admin/alerts", "where the right token leads");
  assert.equal((await page.locator("h1").textContent()).trim(), "Alerts", "the page's heading");
  const logOut = page.locator("nav").getByRole("button", { name: "Log out" });
  await logOut.waitFor({ state: "visible" });
  await shot(page, artifacts, "admin-alerts");

  // The live tail: a matching line appears without a reload; one that does not match, never.
  assertLockedDown(await page.goto(`${base}/admin/logs/tail?q=payment`), "the live tail");
  await page.waitForFunction(
    () => document.getElementById("tail-state").textContent.startsWith("Following"),
    null,
    { timeout: 10_000 },
  );
  await page.evaluate(() => { window.__marker = 1; });
  await shipLogs(base, ["disk noise unrelated", "payment failed for order 42"]);
  await page.waitForFunction(
    () => document.getElementById("tail").textContent.includes("payment failed for order 42"),
    null,
    { timeout: 10_000 },
  );
  const tail = await page.locator("#tail").textContent();
  assert.ok(!tail.includes("disk noise unrelated"), `a line that does not match was shown: ${tail}`);
  assert.equal(await page.evaluate(() => window.__marker), 1, "the tail page was reloaded");
  await shot(page, artifacts, "admin-logs-tail");

  // Logged out: the admin pages need the login again, and the old cookie, put back as a
  // thief would, is refused by the server.
  const [session] = (await page.context().cookies()).filter((c) => c.name === "lookout_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", `the login cookie: ${JSON.stringify(session)}`);
  await Promise.all([page.waitForNavigation(), logOut.click()]);
  await page.goto(`${base}/admin/alerts`);
  assert.equal(path(), "/login", "where /admin/alerts leads after logging out");
  await page.context().addCookies([session]);
  await page.goto(`${base}/admin/alerts`);
  assert.equal(path(), "/login", "where /admin/alerts leads with the cookie from before the logout");
});
