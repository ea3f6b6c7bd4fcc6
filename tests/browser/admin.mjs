// The admin pages need the admin token: without a login they lead to the login form, a wrong
// token is refused with a message, the right one (LOOKOUT_ADMIN_TOKEN) opens the Alerts page,
// and logging out closes them again.
//
// Screenshots: admin-login.png, admin-login-wrong.png, admin-alerts.png.

import assert from "node:assert/strict";
import { run, shot } from "./lib.mjs";

const token = process.env.LOOKOUT_ADMIN_TOKEN;
if (!token) {
  throw new Error("LOOKOUT_ADMIN_TOKEN is not set: run this script through tests/tests/browser.rs");
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
  await page.goto(`${base}/admin/alerts`);
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

  // Logged out: the admin pages need the login again.
  await Promise.all([page.waitForNavigation(), logOut.click()]);
  await page.goto(`${base}/admin/alerts`);
  assert.equal(path(), "/login", "where /admin/alerts leads after logging out");
});
