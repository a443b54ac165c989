// The webhook journey, in a real browser (acceptance of the webhooks part of issue 16).
//
// A receiver on 127.0.0.1 (this process) answers 500 to the first two
// attempts of each event and 200 after. The admin subscribes it to
// `account.created` on the Webhooks page (the secret is shown once), a new
// developer signs up in another context, and the admin watches the delivery
// on the subscription's page: the failed attempt with its 500, Redeliver
// (another 500), Redeliver again, delivered with 200, request headers and
// body shown. Every request the receiver got is checked against the secret
// with the documented signature algorithm (docs/WEBHOOKS.md). The retry
// schedule itself is checked by server/tests/it/webhooks.rs, which drives the
// job's clock; here, real time would mean waiting 2.5 minutes.
// e2e/run starts both server replicas with TOLLGATE_WEBHOOKS_ALLOW_PRIVATE=true.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

import { browserForTheseTests, expectUrl, expectVisible, fetchErrors, gotoOk, watchNetwork, withPage } from '../lib/browser.mjs';

const ADMIN_EMAIL = 'admin@tollgate.local';
const ADMIN_PASSWORD = 'tollgate-admin-demo';
const TIMEOUT_MS = 30_000;
const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');

/** Starts the receiver; `received` holds { headers, body } of every request. */
async function receiver() {
  const received = [];
  const attempts = new Map();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ headers: req.headers, body });
      let id = '';
      try { id = JSON.parse(body).id; } catch { /* not JSON: counted under '' */ }
      const n = (attempts.get(id) || 0) + 1;
      attempts.set(id, n);
      res.writeHead(n <= 2 ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(n <= 2 ? 'not yet' : 'received');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hooks`, received, close: () => server.close() };
}

/** Verifies `Tollgate-Signature` as docs/WEBHOOKS.md says; returns whether it holds. */
function verify(secret, header, body) {
  const parts = Object.fromEntries(String(header).split(',').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
  const expected = createHmac('sha256', secret).update(`${parts.t}.${body}`).digest('hex');
  return typeof parts.v1 === 'string' && parts.v1.length === expected.length
    && timingSafeEqual(Buffer.from(parts.v1), Buffer.from(expected));
}

async function until(what, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const browser = browserForTheseTests();

test('webhook journey 1/1', { timeout: 180_000 }, async () => {
  const hook = await receiver();
  const id = randomBytes(6).toString('hex');
  const email = `hooked-${id}@example.com`;
  try {
    await withPage(browser(), 'webhook journey admin', async (page, ctx) => {
      const network = await watchNetwork(ctx.context);
      ctx.step('admin: sign in and subscribe the receiver');
      await gotoOk(page, '/login');
      await page.getByLabel(label('e-?mail')).fill(ADMIN_EMAIL);
      await page.getByLabel(label('password')).fill(ADMIN_PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await expectUrl(page, (u) => u.pathname === '/admin', '/admin after signing in');
      await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
      await expectUrl(page, (u) => u.pathname === '/admin/webhooks', '/admin/webhooks from the navigation');
      await page.getByLabel('Payload URL').fill(hook.url);
      await page.getByLabel('Description').fill(`journey ${id}`);
      await page.getByRole('checkbox', { name: 'account.created', exact: true }).check();
      await page.getByRole('button', { name: 'Add subscription' }).click();
      const secretBox = page.getByTestId('webhook-secret');
      await expectVisible(secretBox, 'the signing secret, shown once', { failOn: page.locator('.field-error') });
      const secret = (await secretBox.innerText()).trim();
      assert.match(secret, /^whsec_/);

      ctx.step('developer: sign up (raises account.created)');
      await withPage(browser(), 'webhook journey developer', async (dev) => {
        await gotoOk(dev, '/signup');
        await dev.getByLabel(label('e-?mail')).fill(email);
        await dev.getByLabel(label('password')).fill(`Hooked-${id}-password`);
        await dev.getByLabel(label('organi[sz]ation')).fill(`Hooked ${id}`);
        await dev.getByRole('button', { name: 'Create account' }).click();
        await expectVisible(dev.getByRole('heading', { name: 'Check your email' }), 'the heading "Check your email"');
      });
      const first = await until('the first attempt at the receiver', () =>
        hook.received.find((r) => r.body.includes(email)));
      const eventId = JSON.parse(first.body).id;

      ctx.step('admin: the failed attempt in the delivery list');
      await page.getByRole('link', { name: hook.url, exact: true }).click();
      await expectUrl(page, (u) => /^\/admin\/webhooks\/[0-9a-f-]{36}$/.test(u.pathname), 'the subscription page');
      const rows = page.getByTestId('deliveries').locator(`tbody tr[data-event-id="${eventId}"]`);
      const stateOf = (row) => row.getByTestId('delivery-state').innerText().then((s) => s.trim());
      await until('the first attempt listed as retrying', async () => {
        await page.reload();
        return (await rows.count()) >= 1 && (await stateOf(rows.first())) === 'retrying';
      });
      assert.equal((await rows.first().getByTestId('delivery-status').innerText()).trim(), '500');
      assert.equal((await rows.first().getByTestId('delivery-attempts').innerText()).trim(), '1');

      ctx.step('admin: redeliver twice, until the receiver accepts');
      for (const [attempt, expected] of [[2, 'retrying'], [3, 'delivered']]) {
        const before = await rows.count();
        await rows.first().getByRole('button', { name: /^Redeliver/ }).click();
        await expectUrl(page, (u) => /^\/admin\/webhooks\/[0-9a-f-]{36}$/.test(u.pathname), 'back on the subscription page');
        await until(`attempt ${attempt} listed as ${expected}`, async () => {
          await page.reload();
          return (await rows.count()) === before + 1 && (await stateOf(rows.first())) === expected;
        });
      }
      const delivered = rows.first();
      assert.equal((await delivered.getByTestId('delivery-status').innerText()).trim(), '200');
      await delivered.locator('summary').click();
      const details = await delivered.locator('details').innerText();
      assert.match(details, /Tollgate-Signature: t=\d+,v1=[0-9a-f]{64}/, 'the request headers are shown');
      assert.match(details, /"type": "account.created"/, 'the request body is shown');
      assert.match(details, /received/, 'the response body is shown');
      const problems = [...network.problems(), ...fetchErrors(ctx.consoleErrors).map((e) => `console: ${e}`)];
      assert.deepEqual(problems, [], 'the pages work offline, from 127.0.0.1 only, with no failed loads');

      ctx.step('receiver: every copy signed with the secret, one event');
      const mine = hook.received.filter((r) => r.body.includes(email));
      assert.ok(mine.length >= 3, `three attempts reached the receiver, not ${mine.length}`);
      for (const r of mine) {
        assert.equal(r.headers['tollgate-event'], 'account.created');
        assert.ok(verify(secret, r.headers['tollgate-signature'], r.body), 'the signature verifies');
        assert.ok(!verify(`${secret}x`, r.headers['tollgate-signature'], r.body), 'another secret does not');
        assert.equal(JSON.parse(r.body).id, eventId, 'redeliveries carry the same event id');
      }
    });
  } finally {
    hook.close();
  }
});
