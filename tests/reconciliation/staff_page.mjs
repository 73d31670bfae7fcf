// The treasury's reconciliation page in a headless Chromium, against a running nofu.
//
//   node tests/reconciliation/staff_page.mjs <base URL> <artifacts dir> <day> <payout day> <auditor token> <treasury token> <bank CSV>
//
// At 1280×900: an auditor signs in and sees the day but no action; the treasurer runs it, sees
// the totals, both charts and the break, cannot sign off while it is open, assigns, comments and
// resolves it, signs off; then uploads the bank statement of the payout day and runs that day.
// Prints ONE line of JSON (the pytest asserts on it); screenshots go to the artifacts dir.
// playwright-core comes from tests/browser/node_modules (tests/browser/package-lock.json).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(new URL("../browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [, , base, artifacts, day, payoutDay, auditorToken, treasuryToken, bankCsv] = process.argv;
if (!bankCsv) {
  console.error("usage: node staff_page.mjs <base> <artifacts> <day> <payout day> <auditor> <treasury> <bank csv>");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const origin = new URL(base).origin;
const result = { screenshots: [], consoleErrors: [], foreignRequests: [], refusedStatuses: [] };

const browser = await chromium.launch({
  executablePath: process.env.NOFU_CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "ja-JP", timezoneId: "Asia/Tokyo" });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // A refused action answers its page with 4xx on purpose; Chromium logs that as an error.
    const refused = /^Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text());
    if (refused) result.refusedStatuses.push(Number(refused[1]));
    else result.consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => result.consoleErrors.push(String(err)));
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (url.origin !== origin && url.protocol !== "data:") result.foreignRequests.push(url.origin);
  });
  const shot = async (name) => {
    const path = join(artifacts, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    result.screenshots.push(path);
  };
  const dayUrl = `${base}/staff/reconciliations/${day}`;
  const signIn = async (token) => {
    await page.goto(dayUrl);
    result.redirectedToLogin = result.redirectedToLogin ?? new URL(page.url()).pathname;
    await page.fill("#token", token);
    await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
    await page.goto(dayUrl);
  };

  // A wrong token is refused on the sign-in form.
  await page.goto(`${base}/staff/login`);
  await page.fill("#token", "not-a-token");
  await page.click("#sign-in");
  result.badLogin = (await page.textContent("#login-error")).trim();

  // The auditor: reads, cannot act.
  await signIn(auditorToken);
  result.auditor = {
    status: (await page.textContent("#run-status")).trim(),
    runButtons: await page.locator("#run-button").count(),
    signoffButtons: await page.locator("#signoff-button").count(),
  };
  await page.click("form.who button");
  await page.waitForURL("**/staff/login");

  // The treasurer runs the day.
  await signIn(treasuryToken);
  await Promise.all([page.waitForNavigation(), page.click("#run-button")]);
  result.afterRun = {
    notice: (await page.textContent("#notice")).trim(),
    openCount: (await page.textContent("#open-count")).trim(),
    totals: await page.locator("#totals tr").allInnerTexts(),
    taxBars: await page.locator("#tax-chart rect.bar").count(),
    taxLabels: await page.locator("#tax-chart text.label").allTextContents(),
    hourBars: await page.locator("#hour-chart rect.bar").evaluateAll((rs) => rs.filter((r) => Number(r.getAttribute("height")) > 0).map((r) => Number(r.dataset.hour))),
    breaks: await page.locator("#breaks li.break").evaluateAll((ls) => ls.map((l) => [l.dataset.key, l.dataset.status])),
    categories: await page.locator("#categories tr[data-category]").evaluateAll((rs) => rs.map((r) => r.dataset.category)),
    barColour: await page.locator("#tax-chart rect.bar").first().evaluate((r) => getComputedStyle(r).fill),
  };
  await shot("1-run");

  // Sign-off is refused while the break is open.
  await Promise.all([page.waitForNavigation(), page.click("#signoff-button")]);
  result.refusedSignoff = await page.getAttribute("#error", "data-code");

  const breakId = (await page.locator("#breaks li.break").first().getAttribute("id")).replace("break-", "");
  const act = async (action, text) => {
    await page.fill(`#${action}-${breakId}`, text);
    await Promise.all([page.waitForNavigation(), page.click(`#break-${breakId} form.${action} button`)]);
  };
  await act("assign", "収納係 田中");
  await act("comment", "決済事業者に照会済");
  await act("resolve", "窓口で現金収納済のため二重計上なし");
  result.afterResolve = {
    status: await page.getAttribute(`#break-${breakId}`, "data-status"),
    assignee: (await page.textContent(`#break-${breakId} .assignee`)).trim(),
    resolution: (await page.textContent(`#break-${breakId} .resolution`)).trim(),
    history: await page.locator(`#break-${breakId} .history li`).allTextContents(),
    openCount: (await page.textContent("#open-count")).trim(),
  };
  await shot("2-resolved");
  await Promise.all([page.waitForNavigation(), page.click("#signoff-button")]);
  result.signedOff = {
    notice: (await page.textContent("#notice")).trim(),
    status: (await page.textContent("#run-status")).trim(),
    runButtons: await page.locator("#run-button").count(),
  };
  await shot("3-signed-off");

  // The payout day: upload the bank statement, run, nothing left.
  await page.goto(`${base}/staff/reconciliations/${payoutDay}`);
  await page.setInputFiles("#statement", bankCsv);
  await Promise.all([page.waitForNavigation(), page.click("#upload-button")]);
  result.uploadNotice = (await page.textContent("#notice")).trim();
  await Promise.all([page.waitForNavigation(), page.click("#run-button")]);
  result.payoutDay = {
    payouts: await page.locator("#payouts tbody tr").allInnerTexts(),
    noBreaks: await page.locator("#no-breaks").count(),
  };
  await shot("4-payout-day");
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
