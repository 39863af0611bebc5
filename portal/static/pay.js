// Paying on the card or bank page: Stripe.js takes the card or bank details (they go to
// Stripe, never to the portal) and saves them with a SetupIntent; then the portal is asked
// to charge them. A card that needs 3-D Secure is confirmed by the card holder here.
(function () {
  "use strict";
  var form = document.getElementById("pay-form");
  if (!form || typeof Stripe !== "function") { return; }
  var data = form.dataset;
  var stripe = Stripe(data.key);
  var message = document.getElementById("pay-message");
  var button = document.getElementById("pay-button");
  var card = null;
  if (data.method === "card") {
    card = stripe.elements().create("card");
    card.mount("#card-element");
  }

  function fail(text) {
    message.textContent = text || data.msgFailed;
    button.disabled = false;
  }

  async function saveMethod() {
    if (data.method === "card") {
      return stripe.confirmCardSetup(data.secret, {
        payment_method: { card: card, billing_details: { name: data.name } }
      });
    }
    if (typeof stripe.collectBankAccountForSetup !== "function") {
      return { error: { message: data.msgNoBank } };
    }
    var collected = await stripe.collectBankAccountForSetup({
      clientSecret: data.secret,
      params: { payment_method_type: "us_bank_account", payment_method_data: { billing_details: { name: data.name } } }
    });
    if (collected.error) { return collected; }
    return stripe.confirmUsBankAccountSetup(data.secret);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    message.textContent = data.msgWorking;
    try {
      var saved = await saveMethod();
      if (saved.error) { fail(saved.error.message); return; }
      var response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": data.csrf, "Accept": "application/json" }
      });
      var answer = await response.json();
      if (answer.error) { fail(answer.error); return; }
      if (answer.action_secret) {
        // 3-D Secure: the card holder confirms with their bank. The outcome reaches the
        // portal from Stripe either way; the receipt page shows it.
        await stripe.confirmCardPayment(answer.action_secret);
      }
      window.location.assign(answer.next);
    } catch (err) {
      fail();
    }
  });
})();
