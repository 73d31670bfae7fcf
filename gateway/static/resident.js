// Resident pages: the only script nofu serves. Loaded on the receipt (print button) and, with
// real Stripe keys, on the attempt page (Stripe's Payment Element). Everything works without
// it except those two; no inline script anywhere (CSP: script-src 'self' https://js.stripe.com).
(function () {
  "use strict";

  // Print: a button hidden unless this script runs.
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  // Stripe Payment Element: card data goes from the browser to Stripe, never to nofu.
  var mount = document.getElementById("payment-element");
  if (!mount) return;
  var form = document.getElementById("payment-form");
  var submit = document.getElementById("payment-submit");
  var message = document.getElementById("payment-message");
  var loading = document.getElementById("payment-loading");
  var loadFailed = document.getElementById("payment-load-failed");
  function fail() { loading.hidden = true; loadFailed.hidden = false; }
  if (typeof window.Stripe !== "function") { fail(); return; }

  var stripe = window.Stripe(mount.dataset.publishableKey, { locale: mount.dataset.locale });
  var elements = stripe.elements({ clientSecret: mount.dataset.clientSecret, locale: mount.dataset.locale });
  var payment = elements.create("payment", { layout: "tabs" });
  payment.on("ready", function () { loading.hidden = true; submit.disabled = false; });
  payment.on("loaderror", fail);
  payment.mount(mount);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;  // one tap, one confirmation
    message.hidden = true;
    stripe.confirmPayment({ elements: elements, confirmParams: { return_url: mount.dataset.returnUrl } })
      .then(function (result) {
        // Reached only when confirmation failed before any redirect (e.g. a decline):
        // Stripe's message is already localised; the server learns the outcome from Stripe.
        if (result.error) {
          message.textContent = result.error.message || "";
          message.hidden = false;
          submit.disabled = false;
          message.focus();
        }
      });
  });
})();
