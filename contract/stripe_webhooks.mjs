// Stripe's own Node library (pinned in package.json) signs webhook events the way Stripe
// does, and the running stack must accept them at POST /webhooks/stripe, refuse the ones
// Stripe's own verifier refuses, and apply each event once.
//
//   PORTICO_URL=http://… WEBHOOK_SECRET=whsec_… node contract/stripe_webhooks.mjs
import { createRequire } from "node:module";

const require = createRequire(process.env.STRIPE_MODULE_DIR + "/");
const Stripe = require("stripe");
const stripe = new Stripe("sk_test_not_used_for_signing");
const url = `${process.env.PORTICO_URL}/webhooks/stripe`;
const secret = process.env.WEBHOOK_SECRET;

let failures = 0;
function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: ${detail}`}`);
  if (!ok) failures += 1;
}

async function deliver(payload, header) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": header },
    body: payload,
  });
  return { status: res.status, body: await res.json() };
}

const now = Math.floor(Date.now() / 1000);
const event = {
  id: `evt_contract_${Date.now()}`,
  object: "event",
  api_version: "2026-10-28.endive",
  created: now,
  livemode: false,
  pending_webhooks: 1,
  request: { id: null, idempotency_key: null },
  type: "customer.created",
  data: { object: { id: "cus_contract", object: "customer", email: "contract@example.com" } },
};
// Stripe sends its events pretty-printed; the signature covers those exact bytes.
const payload = JSON.stringify(event, null, 2);

const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
const verified = stripe.webhooks.constructEvent(payload, header, secret);
check("Stripe's library verifies its own header", verified.id === event.id, JSON.stringify(verified));
const first = await deliver(payload, header);
check("a signed event is acknowledged", first.status === 200 && first.body.data.duplicate === false, JSON.stringify(first));
const again = await deliver(payload, header);
check("its redelivery is a duplicate", again.status === 200 && again.body.data.duplicate === true, JSON.stringify(again));

const forged = stripe.webhooks.generateTestHeaderString({ payload, secret: "whsec_not_the_endpoints" });
const refused = await deliver(payload, forged);
check(
  "another secret's signature is refused",
  refused.status === 400 && refused.body.error.code === "WEBHOOK_SIGNATURE_INVALID",
  JSON.stringify(refused),
);

const staleHeader = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: now - 600 });
let stripeRefusesStale = false;
try {
  stripe.webhooks.constructEvent(payload, staleHeader, secret);
} catch {
  stripeRefusesStale = true;
}
const stale = await deliver(payload, staleHeader);
check(
  "a signature older than the tolerance is refused, as Stripe's verifier refuses it",
  stripeRefusesStale && stale.status === 400 && stale.body.error.code === "WEBHOOK_SIGNATURE_EXPIRED",
  JSON.stringify(stale),
);

const tampered = await deliver(payload.replace("cus_contract", "cus_tampered"), header);
check("a body changed after signing is refused", tampered.status === 400, JSON.stringify(tampered));

if (failures > 0) {
  console.error(`${failures} webhook check(s) failed`);
  process.exit(1);
}
