// The preview journey, in a real browser (issue 15): "Developers can try a draft or
// mock API from the portal with their key before its backend exists."
//
// Admin: sign in -> import a spec with no upstream (a draft) -> put the whole API in
// mock mode -> a free published plan "Preview" -> open the preview to every developer.
// Developer: sign in -> the catalog marks the draft "Preview — mock responses, no backend
// yet" -> its page says so -> "Choose Preview" -> register an application, key shown once ->
// "Try it out" with that key: the gateway answers 200 from the mocks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { browserForTheseTests, expectUrl, expectVisible, gotoOk, withPage } from '../lib/browser.mjs';

const ADMIN_EMAIL = 'admin@tollgate.local';
const ADMIN_PASSWORD = 'tollgate-admin-demo';
const DEV_EMAIL = 'dev@example.com';
const DEV_PASSWORD = 'tollgate-developer-demo';
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const ADMIN_API_PATH_RE = new RegExp(`^/admin/apis/(${UUID})/?$`);
const APP_PATH_RE = new RegExp(`^/apps/(${UUID})/?$`);
const BADGE = 'Preview — mock responses, no backend yet';

const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');

function spec(title) {
  return `openapi: 3.0.3
info: {title: ${title}, version: '1.0'}
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        '200':
          description: The pets
          content:
            application/json:
              example: [{id: '1', name: Tom}]
`;
}

function slugOf(name) {
  return name.toLowerCase().replace(/[^0-9a-z]+/g, '-').replace(/^-+|-+$/g, '');
}

const browser = browserForTheseTests();

async function signIn(page, email, password, landing) {
  await gotoOk(page, '/login');
  await page.getByLabel(label('e-?mail')).fill(email);
  await page.getByLabel(label('password')).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === landing, `${landing} after signing in as ${email}`, { failOn: page.getByRole('alert') });
}

async function adminPart(page, { step }, names) {
  step('admin sign in');
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD, '/admin');

  step('admin import a draft without an upstream');
  await gotoOk(page, '/admin/apis/new');
  await page.getByLabel('Document', { exact: true }).fill(spec(names.title));
  await page.getByLabel("Name (optional: defaults to the document's title)", { exact: true }).fill(names.api);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expectUrl(page, (u) => ADMIN_API_PATH_RE.test(u.pathname), '/admin/apis/<uuid> after importing', { failOn: page.getByRole('alert') });
  const apiPath = new URL(page.url()).pathname.replace(/\/$/, '');

  step('admin mock mode');
  await page.getByRole('link', { name: 'mock mode and preview', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === `${apiPath}/mocks`, `${apiPath}/mocks`);
  await page.getByRole('button', { name: 'Put the whole API in mock mode', exact: true }).click();
  await expectVisible(page.getByTestId('whole-api').filter({ hasText: 'Every operation is in mock mode.' }), 'the whole API in mock mode');

  step('admin free plan');
  await gotoOk(page, `${apiPath}/plans/new`);
  await page.getByLabel('Name', { exact: true }).fill('Preview');
  await page.getByLabel('System name', { exact: true }).fill('preview');
  await page.getByLabel('Currency', { exact: true }).fill('EUR');
  await page.getByRole('checkbox', { name: 'Published (developers can choose it)', exact: true }).check();
  await page.getByRole('button', { name: 'Save plan', exact: true }).click();
  await expectUrl(page, (u) => u.pathname.replace(/\/$/, '') === apiPath, `back on ${apiPath} after saving the plan`, {
    failOn: page.locator('[role="alert"], .field-error, .flash-error'),
  });

  step('admin open the preview');
  await gotoOk(page, `${apiPath}/mocks`);
  await page.getByRole('button', { name: 'Open the preview to every developer', exact: true }).click();
  await expectVisible(page.getByTestId('preview-state').filter({ hasText: 'Open to every developer since' }), 'the preview open to every developer', {
    actual: () => page.getByTestId('preview').innerText(),
  });
}

async function developerPart(page, { step }, names) {
  const slug = slugOf(names.api);
  step('developer sign in');
  await signIn(page, DEV_EMAIL, DEV_PASSWORD, '/dashboard');

  step('developer sees the preview in the catalog');
  await gotoOk(page, '/');
  const entry = page.getByTestId('catalog').locator('li').filter({ hasText: names.api });
  await expectVisible(entry.getByTestId('preview-badge').filter({ hasText: BADGE }), `the catalog entry of ${names.api} marked "${BADGE}"`, {
    actual: () => page.locator('main').innerText(),
  });
  await entry.getByRole('link', { name: names.api, exact: true }).click();
  await expectUrl(page, (u) => u.pathname === `/apis/${slug}`, `/apis/${slug}`);
  await expectVisible(page.getByTestId('preview-notice'), 'the preview notice on the API page');

  step('developer subscribes');
  await page.getByRole('link', { name: 'Choose Preview', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === '/apps/new', '/apps/new');
  await page.getByLabel(label('name')).fill(names.app);
  await page.getByRole('button', { name: 'Register application', exact: true }).click();
  await expectUrl(page, (u) => APP_PATH_RE.test(u.pathname), '/apps/<uuid>', { failOn: page.getByRole('alert') });
  const key = ((await page.getByTestId('new-key').first().textContent()) || '').trim();
  assert.match(key, /^tg_uk_/, 'a user key is shown once');

  step('developer tries it out against the mocks');
  await gotoOk(page, `/apis/${slug}`);
  await page.locator('#try-key').fill(key);
  const ui = page.locator('#swagger-ui');
  const listPets = ui.locator('.opblock-get').filter({ hasText: 'List pets' }).first();
  await expectVisible(listPets, 'the List pets operation in the docs');
  await listPets.locator('.opblock-summary').first().click();
  await listPets.getByRole('button', { name: /^\s*try it out\s*$/i }).click();
  const live = listPets.locator('.live-responses-table');
  // The gateway learns of the new key within a moment: execute until it answers 200.
  let shown = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    await listPets.getByRole('button', { name: /^\s*execute\s*$/i }).click();
    await expectVisible(live, 'a live response');
    shown = await live.innerText();
    if (/\b200\b/.test(shown) && shown.includes('Tom')) break;
    await page.waitForTimeout(250);
  }
  assert.ok(/\b200\b/.test(shown) && shown.includes('Tom'), `the mock answer (200 with the example) as the live response: ${shown}`);
}

test('preview journey', { timeout: 240_000 }, async () => {
  const id = randomBytes(3).toString('hex');
  const names = { api: `Preview pets ${id}`, title: `Preview e2e ${id}`, app: `Preview app ${id}` };
  await withPage(browser(), 'preview journey admin', (page, ctx) => adminPart(page, ctx, names));
  await withPage(browser(), 'preview journey developer', (page, ctx) => developerPart(page, ctx, names));
});
