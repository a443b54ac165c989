// The billing journey, in a real browser (acceptance of the billing issue).
//
// `tollgate dev` (started by e2e/run) seeds a month of usage for the demo
// developer's application and runs billing for the latest month that has
// ended everywhere, so the demo account has an issued, unpaid invoice before
// any test runs.
//
// Developer (dev@example.com, own context): finds the invoice on the
// Invoices page, opens it (number, lines and total shown), and downloads the
// PDF through the page's link: a real PDF naming the invoice's number and
// total. Admin (own context): opens the same invoice, records a payment with
// a reference; the invoice is paid and its history shows who did it. The
// developer reloads and sees it paid, with the paid date. Both contexts stay
// on 127.0.0.1, with zero console errors and zero CSP violations.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { browserForTheseTests, expectUrl, expectVisible, fetchErrors, gotoOk, watchNetwork, withPage } from '../lib/browser.mjs';

const ADMIN_EMAIL = 'admin@tollgate.local';
const ADMIN_PASSWORD = 'tollgate-admin-demo';
const DEV_EMAIL = 'dev@example.com';
const DEV_PASSWORD = 'tollgate-developer-demo';

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const INVOICE_PATH_RE = new RegExp(`^/invoices/(${UUID})$`);
const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');

async function signIn(page, email, password, landing) {
  await gotoOk(page, '/login');
  await page.getByLabel(label('e-?mail')).fill(email);
  await page.getByLabel(label('password')).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === landing, `${landing} after signing in as ${email}`, { failOn: page.getByRole('alert') });
}

/** `downloads`: URLs that became downloads, whose navigation Chromium reports as aborted. */
function assertOffline(network, consoleErrors, who, downloads = []) {
  const aborted = new Set(downloads.map((url) => `failed: GET ${url}: net::ERR_ABORTED`));
  const problems = [
    ...network.problems().filter((p) => !aborted.has(p)),
    ...fetchErrors(consoleErrors).map((e) => `console: ${e}`),
  ];
  assert.deepEqual(problems, [], `${who}: the pages must work offline, from 127.0.0.1 only`);
  assert.deepEqual(consoleErrors, [], `${who}: no console errors`);
}

const browser = browserForTheseTests();

test('billing journey 1/1', { timeout: 180_000 }, async () => {
  const reference = `BANK-${randomBytes(4).toString('hex').toUpperCase()}`;
  await withPage(browser(), 'billing journey developer', async (page, devCtx) => {
    const network = await watchNetwork(devCtx.context);
    const step = devCtx.step;

    step('developer: sign in and open Invoices');
    await signIn(page, DEV_EMAIL, DEV_PASSWORD, '/dashboard');
    await page.getByRole('link', { name: 'Invoices', exact: true }).first().click();
    await expectUrl(page, (u) => u.pathname === '/invoices', '/invoices from the navigation');
    // The demo invoice is the account's only one; its month depends on today's date
    // (the latest month that has ended in every time zone).
    const row = page.getByTestId('invoices').locator('tbody tr');
    await expectVisible(row.first(), 'the demo invoice', { actual: () => page.getByRole('main').innerText() });
    const number = (await row.first().getByRole('link').innerText()).trim();
    assert.match(number, /^\d{4}-\d{2}-\d{8}$/, 'invoice numbers are YYYY-MM-NNNNNNNN');
    const period = number.slice(0, 7);

    step('developer: open the invoice');
    await row.first().getByRole('link', { name: number, exact: true }).click();
    await expectUrl(page, (u) => INVOICE_PATH_RE.test(u.pathname), '/invoices/<uuid> after choosing the invoice');
    const invoicePath = new URL(page.url()).pathname;
    await expectVisible(page.getByRole('heading', { level: 1, name: `Invoice ${number}` }), 'the invoice heading');
    const state = (await page.getByTestId('invoice-state').innerText()).trim();
    assert.ok(['pending', 'unpaid'].includes(state), `a fresh demo invoice waits for payment, not "${state}"`);
    const total = (await page.getByTestId('total').innerText()).trim();
    assert.match(total, /[1-9]/, `the demo invoice charges something (total "${total}")`);
    const lines = page.getByTestId('invoice-lines').locator('tbody tr.invoice-line');
    assert.ok((await lines.count()) >= 1, 'the invoice lists its lines');

    step('developer: download the PDF');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('pdf-link').click(),
    ]);
    assert.equal(download.suggestedFilename(), `invoice-${number}.pdf`);
    const pdf = await readFile(await download.path());
    assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-', 'the download is a PDF');
    const text = pdf.toString('latin1');
    assert.ok(text.includes(number), 'the PDF names the invoice number');
    const totalDigits = total.replace(/[^0-9.]/g, '');
    assert.ok(text.includes(totalDigits), `the PDF shows the total ${totalDigits}`);

    await withPage(browser(), 'billing journey admin', async (admin, adminCtx) => {
      const adminNet = await watchNetwork(adminCtx.context);
      adminCtx.step('admin: sign in and find the invoice');
      await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD, '/admin');
      await gotoOk(admin, `/admin/invoices?period=${period}`);
      await admin.getByRole('link', { name: number, exact: true }).click();
      await expectVisible(admin.getByRole('heading', { level: 1, name: `Invoice ${number}` }), 'the admin invoice page');

      adminCtx.step('admin: record a payment');
      const form = admin.getByTestId('record-payment');
      await form.getByLabel('Reference').fill(reference);
      await form.getByRole('button', { name: 'Record payment', exact: true }).click();
      await expectVisible(admin.getByTestId('invoice-state').filter({ hasText: /^\s*paid\s*$/ }), 'the invoice paid', {
        actual: () => admin.getByRole('main').innerText(),
        failOn: admin.locator('[role="alert"].flash-error, .field-error'),
      });
      const history = await admin.getByTestId('invoice-history').innerText();
      assert.match(history, /paid/, 'the history records the payment');
      assertOffline(adminNet, adminCtx.consoleErrors, 'admin');
    });

    step('developer: sees the invoice paid');
    await gotoOk(page, invoicePath);
    await expectVisible(page.getByTestId('invoice-state').filter({ hasText: /^\s*paid\s*$/ }), 'the invoice paid', {
      actual: () => page.getByTestId('invoice-state').innerText(),
    });
    await gotoOk(page, '/invoices');
    const paidRow = page.getByTestId('invoices').locator('tbody tr').filter({ hasText: number });
    await expectVisible(paidRow.locator('.badge').filter({ hasText: /^\s*paid\s*$/ }), 'paid in the list');
    assertOffline(network, devCtx.consoleErrors, 'developer', [download.url()]);
  });
});
