// Smoke test of the harness and the existing sign-in pages: the seeded demo
// developer signs in, reaches the dashboard, signs out, and is sent back to
// /login when asking for the dashboard again.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { browserForTheseTests, expectUrl, expectVisible, gotoOk, withPage } from '../lib/browser.mjs';

const DEMO_EMAIL = 'dev@example.com';
const DEMO_PASSWORD = 'tollgate-developer-demo';

const browser = browserForTheseTests();

test('demo developer signs in and out', { timeout: 120_000 }, async () => {
  await withPage(browser(), 'demo developer signs in and out', async (page, { step }) => {
    step('open /login');
    await gotoOk(page, '/login');
    await page.getByLabel(/^\s*e-?mail\b/i).fill(DEMO_EMAIL);
    await page.getByLabel(/^\s*password\b/i).fill(DEMO_PASSWORD);
    step('sign in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectUrl(page, (u) => u.pathname === '/dashboard', '/dashboard', { failOn: page.getByRole('alert') });

    step('sign out');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expectUrl(page, (u) => u.pathname === '/' || u.pathname === '/login', '/ or /login');
    await expectVisible(page.getByRole('link', { name: 'Sign in' }), 'a "Sign in" link once signed out');

    step('dashboard after sign out');
    await page.goto('/dashboard');
    await expectUrl(page, (u) => u.pathname === '/login', '/login (the dashboard needs a session)');
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
  });
});
