// The developer journey through the portal, in a real browser:
// sign up -> verify the email from the mail sink -> sign in -> register an
// application on the Weather API's Basic plan -> see the key once -> rotate
// it -> revoke the new key -> sign out.
//
// Repeated E2E_REPEAT times (default 20), each run a separate test with its
// own fresh browser context and a fresh random email address.
//
// The contract with the pages (labels, button names, data-testid and
// data-key-prefix attributes) is described in e2e/README.md.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { MAIL_DIR, browserForTheseTests, expectUrl, expectVisible, gotoOk, withPage } from '../lib/browser.mjs';
import { findUrl, waitForMail } from '../lib/mail.mjs';

const REPEAT = Number(process.env.E2E_REPEAT || 20);
const MAIL_TIMEOUT_MS = Number(process.env.E2E_MAIL_TIMEOUT_MS || 30_000);
const KEY_RE = /^tg_uk_[0-9A-Za-z]{39}$/;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const APP_PATH_RE = new RegExp(`^/apps/(${UUID})/?$`);

// Labels are matched from their start, case-insensitively, so a hint after
// the label's word ("Password (12 characters or more)") or a required-marker
// still matches, but "Confirm password" does not.
const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');
const EMAIL = label('e-?mail');
const PASSWORD = label('password');
const CONFIRM_PASSWORD = /^\s*(confirm|repeat)\b.*password/i;
const ORGANISATION = label('organi[sz]ation');
const NAME = label('name');
const PLAN = label('plan');

const browser = browserForTheseTests();
before(() => {
  if (!MAIL_DIR) throw new Error('E2E_MAIL_DIR is not set: run the tests with e2e/run');
});

/** The text shown by a new-key element (its text, or its value for an input). */
async function keyText(locator) {
  const tag = await locator.evaluate((el) => el.tagName.toLowerCase());
  const raw = tag === 'input' || tag === 'textarea' ? await locator.inputValue() : await locator.textContent();
  return (raw || '').trim();
}

/** Picks the option of `select` whose text (with its optgroup's label) contains every word. */
async function selectOptionContaining(select, words) {
  const options = await select.evaluate((el) =>
    [...el.options].map((o, index) => ({
      index,
      text: `${o.parentElement?.tagName === 'OPTGROUP' ? `${o.parentElement.label} ` : ''}${o.textContent}`.replace(/\s+/g, ' ').trim(),
      disabled: o.disabled,
    })),
  );
  const match = options.find((o) => !o.disabled && words.every((w) => o.text.includes(w)));
  assert.ok(match, `no option containing ${JSON.stringify(words)}; options are ${JSON.stringify(options.map((o) => o.text))}`);
  await select.selectOption({ index: match.index });
  return match.text;
}

/**
 * Clicks `button`, then waits for `done` to be visible. Should the click
 * lead to a confirmation page instead (another URL), submits it with its
 * button named like `confirmName` and waits for `done` again. A JavaScript
 * confirm() is accepted by the page's dialog handler.
 */
async function clickAndConfirm(page, button, done, confirmName, what) {
  const before = new URL(page.url());
  await button.click();
  const movedAway = page
    .waitForURL((u) => u.pathname !== before.pathname, { timeout: 30_000 })
    .then(() => 'confirm-page', () => 'timeout');
  const finished = done.first().waitFor({ state: 'visible', timeout: 30_000 }).then(() => 'done', () => 'timeout');
  const outcome = await Promise.race([finished, movedAway]);
  if (outcome === 'confirm-page') {
    await page.waitForLoadState();
    if (await done.first().isVisible()) return;
    const confirm = page.getByRole('button', { name: confirmName });
    await expectVisible(confirm, `a button named ${confirmName} on the confirmation page for ${what}`);
    await confirm.first().click();
  }
  await expectVisible(done, what);
}

function rowOf(keys, prefix) {
  return keys.locator(`[data-key-prefix="${prefix}"]`);
}

async function rowText(row) {
  return (await row.first().innerText()).replace(/\s+/g, ' ').trim();
}

async function journey(page, step, n) {
  const id = randomBytes(6).toString('hex');
  const email = `journey-${id}@example.com`;
  const password = `Journey-${randomBytes(9).toString('base64url')}-pw`;
  page.on('dialog', (dialog) => dialog.accept());

  // 1. Sign up.
  step('1 sign up');
  await gotoOk(page, '/signup');
  await page.getByLabel(EMAIL).fill(email);
  await page.getByLabel(PASSWORD).fill(password);
  const confirmPassword = page.getByLabel(CONFIRM_PASSWORD);
  if ((await confirmPassword.count()) > 0) await confirmPassword.fill(password);
  await page.getByLabel(ORGANISATION).fill(`Journey Org ${n} ${id}`);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expectVisible(page.getByRole('heading', { name: 'Check your email' }), 'the heading "Check your email"', {
    failOn: page.getByRole('alert'),
  });

  // 2. Verify the email address with the link from the mail.
  step('2 verify email');
  const { file, message } = await waitForMail(MAIL_DIR, { to: email, subject: 'Verify your email', timeoutMs: MAIL_TIMEOUT_MS });
  const verifyUrl = findUrl(message, '/verify?token=');
  assert.ok(verifyUrl, `no URL containing /verify?token= in ${file}`);
  await gotoOk(page, verifyUrl);
  await page.getByRole('button', { name: 'Verify email' }).click();
  await expectUrl(page, (u) => u.pathname === '/login', '/login after verifying');
  await expectVisible(page.getByRole('status').filter({ hasText: /verified/i }), 'a status message containing "verified"', {
    actual: () => page.getByRole('status').allInnerTexts(),
  });

  // 3. Sign in.
  step('3 sign in');
  await page.getByLabel(EMAIL).fill(email);
  await page.getByLabel(PASSWORD).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectUrl(page, (u) => u.pathname === '/dashboard', '/dashboard after signing in', { failOn: page.getByRole('alert') });

  // 4. Register an application on the Basic plan; the key is shown once.
  step('4 register application');
  await gotoOk(page, '/apps/new');
  await page.getByLabel(NAME).fill(`Journey app ${n}`);
  await selectOptionContaining(page.getByLabel(PLAN), ['Weather API', 'Basic']);
  await page.getByRole('button', { name: 'Register application' }).click();
  await expectUrl(page, (u) => APP_PATH_RE.test(u.pathname), '/apps/<uuid>', { failOn: page.getByRole('alert') });

  const newKey = page.getByTestId('new-key');
  await expectVisible(newKey, 'the new key ([data-testid="new-key"])');
  const key1 = await keyText(newKey.first());
  assert.match(key1, KEY_RE, 'the new key has the user_key format');
  const prefix1 = key1.slice(0, 10);
  const last1 = key1.slice(-4);

  step('4 copy the key');
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.getByRole('button', { name: 'Copy' }).click();
  await expectVisible(page.locator('[data-copy-status="new-key"]').filter({ hasText: 'Copied.' }), 'the copy button says it copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key1, 'the clipboard holds the key');

  step('4 reload: key shown once');
  await page.reload();
  const keys = page.getByTestId('keys');
  await expectVisible(keys, 'the keys table ([data-testid="keys"])');
  assert.equal(await newKey.count(), 0, 'the new key is no longer shown after a reload');
  const row1 = rowOf(keys, prefix1);
  await expectVisible(row1.filter({ hasText: prefix1 }).filter({ hasText: last1 }), `a key row [data-key-prefix="${prefix1}"] showing ${prefix1} and …${last1}`, {
    actual: () => keys.innerText(),
  });
  assert.ok(!(await page.content()).includes(key1), 'the page HTML does not contain the whole key after a reload');

  // 5. Rotate: a new key, the old one expires later (default overlap kept).
  step('5 rotate');
  await clickAndConfirm(
    page,
    row1.getByRole('button', { name: /^\s*rotate\b/i }),
    newKey,
    /rotate|confirm|yes/i,
    'a new key ([data-testid="new-key"]) after rotating',
  );
  const key2 = await keyText(newKey.first());
  assert.match(key2, KEY_RE, 'the rotated key has the user_key format');
  assert.notEqual(key2, key1, 'rotation shows a different key');
  await expectVisible(rowOf(keys, prefix1).filter({ hasText: /expires/i }), `the old key's row [data-key-prefix="${prefix1}"] to say it expires`, {
    actual: () => rowText(rowOf(keys, prefix1)),
  });
  assert.ok(!(await page.content()).includes(key1), 'the old key is never shown again');
  // When it expires is written in UTC and shown in the reader's zone, the UTC kept as a tooltip.
  const expiry = rowOf(keys, prefix1).locator('time[data-local]').first();
  const utc = await expiry.getAttribute('title');
  assert.match(utc ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/, 'the expiry keeps its UTC text as the title');
  const local = (await expiry.innerText()).trim();
  assert.ok(local && !/^\d{4}-\d{2}-\d{2} /.test(local), `the expiry is rewritten in the reader's zone: ${local}`);

  // 6. Revoke the new key.
  step('6 revoke');
  const prefix2 = key2.slice(0, 10);
  const row2 = rowOf(keys, prefix2);
  await expectVisible(row2, `a row for the new key [data-key-prefix="${prefix2}"]`, { actual: () => keys.innerText() });
  await clickAndConfirm(
    page,
    row2.getByRole('button', { name: /^\s*revoke\b/i }),
    rowOf(keys, prefix2).filter({ hasText: /revoked/i }),
    /revoke|confirm|yes/i,
    `the new key's row [data-key-prefix="${prefix2}"] to read "revoked"`,
  );

  // 7. Sign out; the dashboard then needs a session again.
  step('7 sign out');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expectUrl(page, (u) => u.pathname === '/' || u.pathname === '/login', '/ or /login after signing out');
  await page.goto('/dashboard');
  await expectUrl(page, (u) => u.pathname === '/login', '/login when opening /dashboard signed out');
}

// Every run is reported; after MAX_FAILURES failed runs the rest are skipped
// rather than each waiting out its timeouts.
const MAX_FAILURES = Number(process.env.E2E_MAX_FAILURES || 3);
let failures = 0;
for (let n = 1; n <= REPEAT; n++) {
  const name = `developer journey ${n}/${REPEAT}`;
  test(name, { timeout: 180_000 }, async (t) => {
    if (failures >= MAX_FAILURES) {
      t.skip(`skipped: ${failures} earlier runs failed`);
      return;
    }
    try {
      await withPage(browser(), name, (page, { step }) => journey(page, step, n));
    } catch (err) {
      failures += 1;
      throw err;
    }
  });
}
