// Pay one invoice on a phone-sized headless Chromium, against a running nofu + sandbox.
//
//   node tests/browser/pay.mjs <invoice page URL> <artifacts dir> <notice number> <confirmation code>
//
// At 360×740 (deviceScaleFactor 2, touch): a tampered link is refused; the notice number and
// confirmation code typed by hand lead to the invoice page; it fits and can be used from the
// keyboard; the sandbox's declining card shows its message and another try is offered; the
// succeeding card pays; the receipt opens (Japanese, then English) and is checked on the public
// verification page. Prints ONE line of JSON on stdout (the pytest
// asserts on it) and saves screenshots into the artifacts dir. Exit status 0 = the script ran;
// the JSON's fields say what was seen.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [, , pageUrl, artifacts, noticeNumber, confirmationCode] = process.argv;
if (!pageUrl || !artifacts || !noticeNumber || !confirmationCode) {
  console.error("usage: node tests/browser/pay.mjs <invoice page URL> <artifacts dir> <notice number> <code>");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const origin = new URL(pageUrl).origin;

const result = {
  screenshots: [],
  consoleErrors: [],
  foreignRequests: [],
  overflow: {},
  focus: {},
};

const browser = await chromium.launch({
  executablePath: process.env.NOFU_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});

try {
  const context = await browser.newContext({
    viewport: { width: 360, height: 740 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: "ja-JP",
    timezoneId: "Asia/Tokyo",
    userAgent:
      "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36",
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (msg) => { if (msg.type() === "error") result.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => result.consoleErrors.push(String(err)));
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (url.origin !== origin && url.protocol !== "data:") result.foreignRequests.push(url.origin);
  });

  async function shot(name) {
    const path = join(artifacts, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    result.screenshots.push(path);
  }
  async function fits(name) {
    // Nothing wider than the phone: no sideways scrolling at 360 px.
    result.overflow[name] = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  }
  const text = async (selector) => ((await page.locator(selector).first().textContent()) || "").trim();

  // 0. A link cut short (a bad scan) is refused, in words, with a way forward.
  const token = new URL(pageUrl).pathname.split("/").pop();
  const refused = await page.goto(`${origin}/p/${token.slice(0, -5)}`);
  result.refused = {
    status: refused.status(),
    code: await page.getAttribute('meta[name="nofu-code"]', "content"),
    title: await text("h1"),
  };
  await fits("refused");
  await shot("0-refused");
  // Chromium logs the refused document's own 404; anything else logged later is a defect.
  result.refusedConsole = result.consoleErrors.splice(0);

  // 1. Manual entry, as a resident who cannot scan types it (lower case, no dashes), then the
  //    invoice page it leads to.
  await page.locator('a.button[href="/p"]').tap();
  await page.waitForURL(`${origin}/p`);
  await page.fill("#notice_number", noticeNumber.replaceAll("-", ""));
  await page.fill("#confirmation_code", confirmationCode.toLowerCase());
  await fits("entry");
  await shot("1a-entry");
  await Promise.all([page.waitForURL(pageUrl), page.locator('form.entry button[type="submit"]').tap()]);
  result.enteredToPage = page.url() === pageUrl;
  result.htmlLang = await page.getAttribute("html", "lang");
  result.stateBefore = await page.getAttribute("[data-state]", "data-state");
  result.total = await text('[data-testid="total"]');
  result.lateFee = await text('[data-testid="late-fee"]');
  await fits("invoice");
  await shot("1-invoice");

  // Keyboard: the first Tab reaches the skip link, and focus is visible.
  await page.keyboard.press("Tab");
  result.focus.first = await page.evaluate(() => document.activeElement?.className || document.activeElement?.tagName);
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  result.focus.outline = await page.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return { tag: el.tagName, outlineStyle: style.outlineStyle, outlineWidth: style.outlineWidth };
  });

  // The pay button is big enough to tap (≥ 44 CSS px tall) and says the amount.
  const pay = page.locator('[data-testid="pay"]');
  result.payButton = { text: ((await pay.textContent()) || "").trim(), height: (await pay.boundingBox())?.height };

  // 2. Tap pay: the attempt page with the sandbox's test methods.
  await Promise.all([page.waitForURL(/\/attempts\//), pay.tap()]);
  result.attemptState = await page.getAttribute("[data-state]", "data-state");
  result.methods = await page.locator('button[name="method"]').evaluateAll((els) => els.map((e) => e.value));
  await fits("attempt");
  await shot("2-attempt");

  // 3. A declined card: the mapped message, and another try (a new attempt).
  const firstAttempt = page.url();
  await page.locator('[data-testid="method-card_declined"]').tap();
  await page.waitForFunction(() => document.querySelector("[data-state]")?.dataset.state !== "attempt-created");
  await page.waitForLoadState("load");
  result.declinedState = await page.getAttribute("[data-state]", "data-state");
  result.declinedMessage = await text('[data-testid="failure"] p');
  await fits("declined");
  await shot("2b-declined");
  await Promise.all([page.waitForURL((url) => url.href !== firstAttempt), page.locator('[data-testid="try-again"]').tap()]);
  result.retryIsNewAttempt = page.url() !== firstAttempt && /\/attempts\/pa_/.test(page.url());

  // 4. Pay with the succeeding test card: the completion page.
  // The form posts and is redirected back to the same URL: wait for the page to change state.
  await page.locator('[data-testid="method-card_success"]').tap();
  await page.waitForFunction(() => document.querySelector("[data-state]")?.dataset.state !== "attempt-created");
  await page.waitForLoadState("load");
  result.doneState = await page.getAttribute("[data-state]", "data-state");
  result.doneTitle = await text("h1");
  await fits("done");
  await shot("3-done");

  // 5. The receipt (支払完了証明).
  await Promise.all([page.waitForURL(/\/receipt$/), page.locator('[data-testid="receipt-link"]').tap()]);
  result.receipt = {
    title: await text("h1"),
    number: await text('[data-testid="receipt-number"]'),
    amount: await text('[data-testid="amount-paid"]'),
    paidAt: await text('[data-testid="paid-at"]'),
    providerRef: await text('[data-testid="provider-ref"]'),
    code: await text('[data-testid="verification-code"]'),
    printVisible: await page.locator("[data-print]").isVisible(),
  };
  await fits("receipt");
  await shot("4-receipt");
  const receiptUrl = page.url();

  // 6. The same receipt in English (the switch link), then back to Japanese.
  await Promise.all([page.waitForURL(/lang=en/), page.locator("a.lang").tap()]);
  result.englishLang = await page.getAttribute("html", "lang");
  result.englishTitle = await text("h1");
  await fits("receipt-en");
  await shot("5-receipt-en");
  await page.goto(receiptUrl + "?lang=ja");

  // 7. Anyone can check the receipt is genuine.
  await page.goto(`${origin}/receipts`);
  await page.fill("#number", result.receipt.number);
  await page.fill("#code", result.receipt.code.toLowerCase());
  await Promise.all([page.waitForURL(/\/receipts\/R/), page.locator('form button[type="submit"]').tap()]);
  result.verify = await page.getAttribute('[data-testid="verify-result"]', "data-result");
  await fits("verify");
  await shot("6-verify");

  // 8. Back on the invoice: paid, on the day, with a link to the receipt.
  await page.goto(pageUrl);
  result.stateAfter = await page.getAttribute("[data-state]", "data-state");
  result.paidOn = await text('[data-testid="paid-on"]');
  await shot("7-invoice-paid");

  await context.close();
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack ? error.stack : error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
