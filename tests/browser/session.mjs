// A login ends on the server when [server] session_lifetime has passed, whatever the browser
// keeps: log in (LOOKOUT_ADMIN_TOKEN), make the browser keep the cookie for an hour, then load
// /admin/alerts again and again until the server sends the page to the login form. It must not
// happen before LOOKOUT_SESSION_SECONDS, and must happen within a few seconds after.

import assert from "node:assert/strict";
import { run } from "./lib.mjs";

const token = process.env.LOOKOUT_ADMIN_TOKEN;
const lifetime = Number(process.env.LOOKOUT_SESSION_SECONDS);
if (!token || !(lifetime > 0)) {
  throw new Error("LOOKOUT_ADMIN_TOKEN and LOOKOUT_SESSION_SECONDS must be set: run this script through tests/tests/browser.rs");
}

await run("session", async ({ base, newPage }) => {
  const page = await newPage();
  const path = () => new URL(page.url()).pathname;
  await page.goto(`${base}/admin/alerts`);
  assert.equal(path(), "/login", "where /admin/alerts leads without a login");
  await page.locator("input[name=token]").fill(token);
  const loggedIn = Date.now();
  await Promise.all([page.waitForNavigation(), page.locator("form [type=submit]").first().click()]);
  assert.equal(path(), "/admin/alerts", "where the right token leads");
  // The browser would keep it for an hour: only the server can end it now.
  const context = page.context();
  const [cookie] = (await context.cookies()).filter((c) => c.name === "lookout_session");
  assert.ok(cookie, "a login cookie");
  await context.addCookies([{ ...cookie, expires: Math.floor(Date.now() / 1000) + 3600 }]);
  let ended = null;
  while (ended === null) {
    await page.goto(`${base}/admin/alerts`);
    const elapsed = Date.now() - loggedIn;
    if (path() === "/login") {
      ended = elapsed;
    } else if (elapsed > (lifetime + 10) * 1000) {
      throw new Error(`still logged in ${elapsed} ms after a login of ${lifetime} s`);
    } else {
      // The next look at the page, a quarter of a second later.
      await page.waitForTimeout(250);
    }
  }
  assert.ok(ended >= (lifetime - 1) * 1000, `the login ended after ${ended} ms, before its ${lifetime} s`);
  const [kept] = (await context.cookies()).filter((c) => c.name === "lookout_session");
  assert.ok(kept, "the browser still had the cookie: the server refused it");
});
