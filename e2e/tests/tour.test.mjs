// The README tour, in a real browser (acceptance of the "first run" part of
// the operators issue): from the portal's home page a new developer signs up,
// opens the verification mail in `tollgate dev`'s mail viewer, verifies,
// signs in, registers an application on the Weather API's Basic plan, and
// calls the API through the gateway agent with the key (node's fetch stands
// in for the README's curl). Every click, press and option pick the test
// makes is counted: at most 10. The one typed URL is the portal's home page.
//
// The second replica (`tollgate serve`) must answer 404 at /dev/mail.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import { browserForTheseTests, expectUrl, expectVisible, fetchErrors, gotoOk, watchNetwork, withPage } from '../lib/browser.mjs';

const GATEWAY_URL = (process.env.E2E_GATEWAY_URL || '').replace(/\/$/, '');
const REPLICA_URL = (process.env.E2E_REPLICA_URL || '').replace(/\/$/, '');
const MAX_CLICKS = 10;
const KEY_RE = /^tg_uk_[0-9A-Za-z]{39}$/;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const APP_PATH_RE = new RegExp(`^/apps/(${UUID})/?$`);
const MAIL_PATH_RE = new RegExp(`^/dev/mail/(${UUID})$`);
const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');

const browser = browserForTheseTests();

/** Counts every click, press and option pick, so the tour's length is measured, not assumed. */
function clickCounter() {
  const log = [];
  return {
    log,
    async click(locator, what) {
      log.push(what);
      await locator.first().click();
    },
    async pick(select, words) {
      const options = await select.evaluate((el) =>
        [...el.options].map((o, index) => ({ index, text: o.textContent.replace(/\s+/g, ' ').trim(), disabled: o.disabled })),
      );
      const match = options.find((o) => !o.disabled && words.every((w) => o.text.includes(w)));
      assert.ok(match, `no option containing ${JSON.stringify(words)}; options are ${JSON.stringify(options.map((o) => o.text))}`);
      log.push(`pick ${match.text}`);
      await select.selectOption({ index: match.index });
    },
  };
}

/** Polls `probe` until it returns { ok: true }, or fails after the deadline with what it saw last. */
async function eventually(what, probe, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await probe();
    if (last.ok) return last;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`);
    await delay(100); // polling interval of a deadline-bounded poll
  }
}

test('tour journey 1/1', { timeout: 180_000 }, async (t) => {
  assert.ok(GATEWAY_URL, 'E2E_GATEWAY_URL is not set: run the tests with e2e/run');
  assert.ok(REPLICA_URL, 'E2E_REPLICA_URL is not set: run the tests with e2e/run');
  const replica = await fetch(`${REPLICA_URL}/dev/mail`);
  assert.equal(replica.status, 404, '`tollgate serve` has no mail viewer');

  const id = randomBytes(6).toString('hex');
  const email = `tour-${id}@example.com`;
  const password = `Tour-${randomBytes(9).toString('base64url')}-pw`;
  const clicks = clickCounter();

  await withPage(browser(), 'tour journey', async (page, { context, consoleErrors, step }) => {
    const network = await watchNetwork(context);

    step('1 sign up');
    await gotoOk(page, '/');
    await clicks.click(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sign up' }), 'Sign up');
    await expectUrl(page, (u) => u.pathname === '/signup', '/signup');
    await page.getByLabel(label('e-?mail')).fill(email);
    await page.getByLabel(label('password')).fill(password);
    await page.getByLabel(label('organi[sz]ation')).fill(`Tour Org ${id}`);
    await clicks.click(page.getByRole('button', { name: 'Create account' }), 'Create account');
    await expectVisible(page.getByRole('heading', { name: 'Check your email' }), 'the heading "Check your email"', {
      failOn: page.getByRole('alert'),
    });

    step('2 open the mail in the dev viewer');
    await clicks.click(page.getByRole('link', { name: 'development mail viewer', exact: true }), 'development mail viewer');
    await expectUrl(page, (u) => u.pathname === '/dev/mail', '/dev/mail');
    const row = page.getByTestId('mail').locator('tbody tr').filter({ hasText: email });
    await expectVisible(row, `a row of the mail list to ${email}`);
    const times = await page.getByTestId('mail').locator('tbody time').evaluateAll((els) => els.map((e) => e.getAttribute('datetime')));
    const stamps = times.map((time) => Date.parse(time));
    assert.ok(stamps.every((s, i) => i === 0 || stamps[i - 1] >= s), `the newest mail is listed first: ${times.join(', ')}`);
    await clicks.click(row.getByRole('link', { name: /Verify your email/ }), 'the verification mail');
    await expectUrl(page, (u) => MAIL_PATH_RE.test(u.pathname), '/dev/mail/<uuid>');
    await expectVisible(page.getByTestId('mail-to').filter({ hasText: email }), `the mail's recipient ${email}`);

    step('3 verify');
    await clicks.click(page.getByTestId('mail-body').getByRole('link', { name: /\/verify\?token=/ }), 'the verification link');
    await expectUrl(page, (u) => u.pathname === '/verify', '/verify?token=…');
    await clicks.click(page.getByRole('button', { name: 'Verify email' }), 'Verify email');
    await expectUrl(page, (u) => u.pathname === '/login', '/login after verifying');
    await expectVisible(page.getByRole('status').filter({ hasText: /verified/i }), 'a status message containing "verified"');

    step('4 sign in');
    await page.getByLabel(label('e-?mail')).fill(email);
    await page.getByLabel(label('password')).fill(password);
    await clicks.click(page.getByRole('button', { name: 'Sign in', exact: true }), 'Sign in');
    await expectUrl(page, (u) => u.pathname === '/dashboard', '/dashboard after signing in', { failOn: page.getByRole('alert') });

    step('5 register an application');
    await clicks.click(page.getByRole('link', { name: 'Register an application' }), 'Register an application');
    await expectUrl(page, (u) => u.pathname === '/apps/new', '/apps/new');
    await page.getByLabel(label('name')).fill(`Tour app ${id}`);
    await clicks.pick(page.getByLabel(label('plan')), ['Weather API', 'Basic']);
    await clicks.click(page.getByRole('button', { name: 'Register application' }), 'Register application');
    await expectUrl(page, (u) => APP_PATH_RE.test(u.pathname), '/apps/<uuid>', { failOn: page.getByRole('alert') });
    const newKey = page.getByTestId('new-key');
    await expectVisible(newKey, 'the new key ([data-testid="new-key"])');
    const key = ((await newKey.first().textContent()) || '').trim();
    assert.match(key, KEY_RE, 'the key has the user_key format');

    step('6 call the API with the key');
    // The agent learns of the key over its config stream, a moment after the page shows it.
    const call = await eventually('a 200 from the gateway with the new key', async () => {
      const res = await fetch(`${GATEWAY_URL}/weather/cities?user_key=${key}`);
      return { ok: res.status === 200, status: res.status, body: await res.text() };
    });
    assert.ok(call.body.length > 0, 'the demo upstream answered through the gateway');
    const anonymous = await fetch(`${GATEWAY_URL}/weather/cities`);
    assert.equal(anonymous.status, 401, 'without a key the gateway refuses');

    step('offline');
    const problems = [...network.problems(), ...fetchErrors(consoleErrors).map((e) => `console: ${e}`)];
    assert.deepEqual(problems, [], 'the tour works from 127.0.0.1 only');
    assert.deepEqual(consoleErrors, [], 'no console errors');
  });

  t.diagnostic(`clicks: ${clicks.log.length} (${clicks.log.join(' → ')})`);
  assert.ok(clicks.log.length <= MAX_CLICKS, `the tour took ${clicks.log.length} clicks: ${clicks.log.join(', ')}`);
});
