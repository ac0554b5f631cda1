// Drives a running relay's tag and check routes with the npm package mailpit-api, as a
// Mailpit user's test suite would, and prints what it saw as one JSON object for
// tests/test_mailpit_client.py.
// Usage: node mailpit_tags_checks.mjs http://127.0.0.1:PORT LINK
import { MailpitClient } from "mailpit-api";

const client = new MailpitClient(process.argv[2]);
const link = process.argv[3];
const out = {};

const sent = await client.sendMessage({
  From: { Email: "shop@example.com", Name: "Shop" },
  To: [{ Email: "jane@example.com" }],
  Subject: "Your order",
  Text: `Track it at ${link}`,
  HTML: `<div style="display: flex"><a href="${link}">Track your order</a></div>`,
  Tags: ["Welcome"],
});
const id = sent.ID;

out.tagsSent = await client.getTags();
out.setTags = await client.setTags({ IDs: [id], Tags: ["alpha", "beta"] });
out.tagsSet = await client.getTags();
out.renameTag = await client.renameTag("alpha", "Alpha Two");
out.deleteTag = await client.deleteTag("beta");
out.tagsAfter = await client.getTags();
out.searchTag = (await client.searchMessages({ query: 'tag:"alpha two"' })).messages_count;
out.messageTags = (await client.getMessageSummary(id)).Tags;

const html = await client.htmlCheck(id);
out.html = {
  keys: Object.keys(html).sort(),
  total: Object.keys(html.Total).sort(),
  slugs: html.Warnings.map((w) => w.Slug),
  platforms: Object.keys(html.Platforms).length,
};
out.links = await client.linkCheck(id);
out.linksFollowed = await client.linkCheck(id, true);
out.spam = await client.spamAssassinCheck(id);
out.removeAll = await client.setTags({ IDs: [id] });
out.tagsEnd = await client.getTags();

console.log(JSON.stringify(out));
