// Drives relay's chaos triggers with the npm package mailpit-api's own chaos calls
// (getChaosTriggers, setChaosTriggers), as a Mailpit user's suite would, and prints what
// it saw as one JSON object for tests/test_mailpit_client.py.
// Usage: node mailpit_chaos.mjs http://127.0.0.1:PORT
import { MailpitClient } from "mailpit-api";

const client = new MailpitClient(process.argv[2]);
const out = {};

async function attempt(name, call) {
  try {
    out[name] = await call();
  } catch (error) {
    out[name] = { thrown: String(error.message) };
  }
}

await attempt("initial", () => client.getChaosTriggers());
await attempt("setSender", () =>
  client.setChaosTriggers({ Sender: { ErrorCode: 452, Probability: 100 } }),
);
await attempt("afterSet", () => client.getChaosTriggers());
await attempt("setRecipient", () =>
  client.setChaosTriggers({ Recipient: { Probability: 30 }, Authentication: { ErrorCode: 454 } }),
);
await attempt("badCode", () => client.setChaosTriggers({ Sender: { ErrorCode: 200 } }));
await attempt("badProbability", () =>
  client.setChaosTriggers({ Recipient: { Probability: 101 } }),
);
await attempt("afterBad", () => client.getChaosTriggers());
await attempt("reset", () => client.setChaosTriggers());

console.log(JSON.stringify(out));
