// Drives a running relay with the npm package mailpit-api, as a Mailpit user's test suite
// would, and prints what it saw as one JSON object for tests/test_mailpit_client.py.
// Usage: node mailpit_client.mjs http://127.0.0.1:PORT
import { MailpitClient } from "mailpit-api";

const client = new MailpitClient(process.argv[2]);
const out = {};

const sent = await client.sendMessage({
  From: { Email: "app@example.com", Name: "App" },
  To: [{ Email: "jane@example.com", Name: "Jane" }],
  Subject: "Welcome Jane",
  Text: "Hello Jane",
  HTML: "<p>Hello <b>Jane</b></p>",
});
out.sentId = sent.ID;

const list = await client.listMessages();
out.list = { total: list.total, count: list.messages_count, ids: list.messages.map((m) => m.ID) };

const found = await client.searchMessages({ query: "subject:welcome" });
out.search = { count: found.messages_count, subjects: found.messages.map((m) => m.Subject) };

const message = await client.getMessageSummary(sent.ID);
out.message = { subject: message.Subject, from: message.From, to: message.To, text: message.Text };

const latest = await client.getMessageSummary();
out.latestId = latest.ID;

out.headers = Object.keys(await client.getMessageHeaders(sent.ID));
out.raw = await client.getMessageSource(sent.ID);
out.html = await client.renderMessageHTML(sent.ID);
out.text = await client.renderMessageText(sent.ID);

const waited = await client.waitForMessage({ query: "subject:welcome" }, { timeout: 2000 });
out.waitedId = waited.ID;

out.setRead = await client.setReadStatus({ IDs: [sent.ID], Read: false });
out.unreadAfter = (await client.listMessages()).unread;

out.deleteSearch = await client.deleteMessagesBySearch({ query: "subject:nothing-matches" });
out.deleteOne = await client.deleteMessages({ IDs: [sent.ID] });
out.deleteAll = await client.deleteMessages();
out.totalAfter = (await client.listMessages()).total;

console.log(JSON.stringify(out));
