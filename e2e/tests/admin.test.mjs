// The admin journey, in a real browser (acceptance of the admin issue):
// "An admin imports a spec, creates a plan and publishes; a developer sees
// the API in the catalog, reads the docs, and registers an app on that plan."
//
// Admin (own fresh context): sign in -> a broken spec gives a readable error
// -> import a spec by file upload -> new plan "Starter" (published, with a
// daily limit) -> publish the API.
// Developer (another fresh context): sign in -> search the catalog -> the API
// page: plan comparison, Swagger UI docs rendered offline, quick-start curl ->
// "Choose Starter" -> register an application -> the key is shown once.
// Both contexts run offline: any request to a host other than 127.0.0.1 /
// localhost is aborted and fails the test.
//
// Runs E2E_ADMIN_REPEAT times (default 1), each with unique names.
// The contract with the pages is described in e2e/README.md.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { browserForTheseTests, expectUrl, expectVisible, fetchErrors, gotoOk, watchNetwork, withPage } from '../lib/browser.mjs';

const REPEAT = Number(process.env.E2E_ADMIN_REPEAT || 1);
const ADMIN_EMAIL = 'admin@tollgate.local';
const ADMIN_PASSWORD = 'tollgate-admin-demo';
const DEV_EMAIL = 'dev@example.com';
const DEV_PASSWORD = 'tollgate-developer-demo';

const KEY_RE = /^tg_uk_[0-9A-Za-z]{39}$/;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const ADMIN_API_PATH_RE = new RegExp(`^/admin/apis/(${UUID})/?$`);
const APP_PATH_RE = new RegExp(`^/apps/(${UUID})/?$`);

const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');
const EMAIL = label('e-?mail');
const PASSWORD = label('password');

const BROKEN_SPEC = "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {pets: {}}\n";

/** A small valid OpenAPI 3.0 document in YAML, titled `title`. */
function petsSpec(title) {
  return `openapi: 3.0.3
info:
  title: ${title}
  version: '1.0'
  description: Pets for the admin journey.
servers:
  - url: https://pets.example.invalid/v1
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      parameters:
        - name: limit
          in: query
          schema: {type: integer, minimum: 1}
      responses:
        '200':
          description: The pets
          content:
            application/json:
              schema:
                type: array
                items: {$ref: '#/components/schemas/Pet'}
  /pets/{petId}:
    get:
      operationId: getPet
      summary: One pet
      parameters:
        - name: petId
          in: path
          required: true
          schema: {type: string}
      responses:
        '200':
          description: The pet
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        '404':
          description: No such pet
components:
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties:
        id: {type: string}
        name: {type: string}
`;
}

/** The slug the server derives from a name: lower case, runs of other characters -> '-'. */
function slugOf(name) {
  return name.toLowerCase().replace(/[^0-9a-z]+/g, '-').replace(/^-+|-+$/g, '');
}

const browser = browserForTheseTests();

/** Step timings: step(name) ends the previous step and starts `name`. */
function stopwatch(setStep) {
  const times = [];
  let current;
  let started;
  const end = () => {
    if (current) times.push([current, Date.now() - started]);
  };
  return {
    step(name) {
      end();
      current = name;
      started = Date.now();
      setStep(name);
    },
    finish() {
      end();
      current = undefined;
      return times;
    },
  };
}

/** Fails with everything the network watcher and the console recorded. */
function assertOffline(network, consoleErrors, who) {
  const problems = [...network.problems(), ...fetchErrors(consoleErrors).map((e) => `console: ${e}`)];
  assert.deepEqual(problems, [], `${who}: the pages must work offline, from 127.0.0.1 only`);
}

async function signIn(page, email, password, landing) {
  await gotoOk(page, '/login');
  await page.getByLabel(EMAIL).fill(email);
  await page.getByLabel(PASSWORD).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === landing, `${landing} after signing in as ${email}`, { failOn: page.getByRole('alert') });
}

/** The admin half; returns what the developer needs to find. */
async function adminPart(page, { context, consoleErrors, step }, names) {
  const network = await watchNetwork(context);
  const alert = page.getByRole('alert');

  // 1. Sign in as the seeded admin.
  step('admin 1 sign in');
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD, '/admin');

  // 2. A broken spec answers with a readable error, located by JSON pointer.
  step('admin 2 import a broken spec');
  await page.getByRole('link', { name: 'Import an API', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === '/admin/apis/new', '/admin/apis/new');
  const documentArea = page.getByLabel('Document', { exact: true });
  await documentArea.fill(BROKEN_SPEC);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expectVisible(
    alert.filter({ hasText: 'could not be imported' }).filter({ hasText: '/paths/pets' }),
    'a role="alert" box saying the document "could not be imported" at /paths/pets',
    { actual: () => alert.allInnerTexts() },
  );
  assert.equal(new URL(page.url()).pathname, '/admin/apis/new', 'the rejected import stays on the import page');

  // 3. Import a valid spec by file upload (a small script fills the textarea).
  step('admin 3 import by file upload');
  // The re-rendered page's alert can show before its script has attached the file
  // input's change listener; a file chosen before that was never read (CI flake).
  await page.waitForLoadState('load');
  await page.setInputFiles('#spec-file', { name: 'pets.yaml', mimeType: 'application/yaml', buffer: Buffer.from(petsSpec(names.title)) });
  await page.waitForFunction(
    (title) => {
      const area = document.getElementById('spec');
      return !!area && area.value.includes(title);
    },
    names.title,
  );
  assert.ok(!(await documentArea.inputValue()).includes('paths: {pets: {}}'), 'the uploaded file replaced the broken document');
  await page.getByLabel("Name (optional: defaults to the document's title)", { exact: true }).fill(names.api);
  await page.getByLabel('Upstream URL', { exact: true }).fill('http://127.0.0.1:9');
  // The broken import's alert is still on this page: judge the POST's answer
  // rather than racing that stale alert.
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/admin/apis/new');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const posted = await answer;
  if (posted.status() !== 303) {
    await page.waitForLoadState();
    const shown = await alert.allInnerTexts().catch(() => []);
    throw new Error(`importing the uploaded spec answered ${posted.status()} instead of a redirect; the page shows ${JSON.stringify(shown)}`);
  }
  await expectUrl(page, (u) => ADMIN_API_PATH_RE.test(u.pathname), '/admin/apis/<uuid> after importing');
  const apiPath = new URL(page.url()).pathname.replace(/\/$/, '');
  const heading = page.getByRole('heading', { level: 1 });
  await expectVisible(heading.filter({ hasText: names.api }), `the heading with the API's name ${JSON.stringify(names.api)}`, {
    actual: () => heading.allInnerTexts(),
  });
  await expectVisible(heading.locator('.badge').filter({ hasText: /^\s*draft\s*$/ }), 'a "draft" badge', {
    actual: () => heading.allInnerTexts(),
  });
  const slug = slugOf(names.api);
  await expectVisible(page.locator('main p').filter({ hasText: `slug ${slug}` }), `"slug ${slug}" (derived from the name)`, {
    actual: () => page.locator('main p').allInnerTexts(),
  });

  // 4. A published plan with a daily limit.
  step('admin 4 new plan');
  await page.getByRole('link', { name: 'New plan', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === `${apiPath}/plans/new`, `${apiPath}/plans/new`);
  await page.getByLabel('Name', { exact: true }).fill('Starter');
  await page.getByLabel('System name', { exact: true }).fill('starter');
  await page.getByLabel('Monthly fee', { exact: true }).fill('9.50');
  await page.getByLabel('Currency', { exact: true }).fill('EUR');
  await page.getByRole('checkbox', { name: 'Published (developers can choose it)', exact: true }).check();
  const metric = page.getByLabel('Limit 1 metric', { exact: true });
  const period = page.getByLabel('Limit 1 period', { exact: true });
  const max = page.getByLabel('Limit 1 max', { exact: true });
  assert.equal(await metric.getAttribute('id'), 'limit_metric_0');
  assert.equal(await period.getAttribute('id'), 'limit_period_0');
  assert.equal(await max.getAttribute('id'), 'limit_max_0');
  await metric.fill('hits');
  await period.selectOption('day');
  await max.fill('500');
  await page.getByRole('button', { name: 'Save plan', exact: true }).click();
  await expectUrl(page, (u) => u.pathname.replace(/\/$/, '') === apiPath, `back on ${apiPath} after saving the plan`, {
    failOn: page.locator('[role="alert"], .field-error, .flash-error'),
  });
  const plans = page.getByTestId('plans');
  await expectVisible(plans.filter({ hasText: 'Starter' }), 'the plans table ([data-testid="plans"]) listing Starter', {
    actual: () => page.locator('main').innerText(),
  });

  // 5. Publish the API.
  step('admin 5 publish');
  await page.getByRole('button', { name: 'Publish', exact: true }).click();
  await expectVisible(heading.locator('.badge').filter({ hasText: /^\s*published\s*$/ }), 'a "published" badge', {
    actual: () => heading.allInnerTexts(),
    failOn: alert,
  });

  step('admin 8 offline');
  assertOffline(network, consoleErrors, 'admin');
  return { slug };
}

/** The developer half. */
async function developerPart(page, { context, consoleErrors, step }, names, { slug }) {
  const network = await watchNetwork(context);

  // 6. Find the API in the catalog and read its page.
  step('developer 6 sign in');
  await signIn(page, DEV_EMAIL, DEV_PASSWORD, '/dashboard');

  step('developer 6 search the catalog');
  await gotoOk(page, '/');
  await page.getByLabel('Search APIs', { exact: true }).fill(names.api);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const catalog = page.getByTestId('catalog');
  const entry = catalog.getByRole('link', { name: names.api, exact: true });
  await expectVisible(entry, `a link ${JSON.stringify(names.api)} in the catalog ([data-testid="catalog"])`, {
    actual: () => page.locator('main').innerText(),
  });
  await entry.click();
  await expectUrl(page, (u) => u.pathname === `/apis/${slug}`, `/apis/${slug}`);

  step('developer 6 plan comparison');
  const plans = page.getByTestId('plans');
  await expectVisible(plans.filter({ hasText: 'Starter' }).filter({ hasText: '9.5 EUR' }), 'the plan comparison showing Starter at 9.5 EUR', {
    actual: () => plans.innerText(),
  });

  step('developer 6 Swagger UI docs');
  const ui = page.locator('#swagger-ui');
  await expectVisible(ui.locator('.opblock'), 'Swagger UI operation blocks (#swagger-ui .opblock)', {
    actual: async () => ({ ui: (await ui.innerText()).slice(0, 500), console: consoleErrors }),
  });
  const pathText = ui.locator('.opblock-summary-path').filter({ hasText: /^\s*\/pets\s*$/ });
  await expectVisible(pathText, 'the operation path /pets in the docs', {
    actual: () => ui.locator('.opblock-summary-path').allInnerTexts(),
  });
  await expectVisible(ui.getByText('List pets'), 'the summary "List pets" in the docs');
  const uiErrors = ui.locator('.errors-wrapper');
  assert.equal(await uiErrors.count(), 0, `Swagger UI shows no errors: ${JSON.stringify(await uiErrors.allInnerTexts())}`);
  assert.equal(await page.getByRole('main').count(), 1, 'one main landmark: Swagger UI\'s own <main> elements are named regions');

  // "Try it out" calls the gateway from the page: allowed by the page's
  // Content-Security-Policy (connect-src names the gateway), answered with
  // CORS by the agent. Without a key the gateway's answer is 401, which
  // Swagger UI shows as the live response's status.
  step('developer 6 try it out');
  const listPets = ui.locator('.opblock-get').filter({ hasText: 'List pets' }).first();
  await listPets.locator('.opblock-summary').first().click();
  await listPets.getByRole('button', { name: /^\s*try it out\s*$/i }).click();
  await listPets.getByRole('button', { name: /^\s*execute\s*$/i }).click();
  const live = listPets.locator('.live-responses-table');
  await expectVisible(live.filter({ hasText: 'missing_credentials' }), 'the gateway\'s 401 missing_credentials as the live response of "Try it out"', {
    actual: async () => ({ response: await live.innerText().catch(() => '(none)'), console: consoleErrors }),
  });

  // That 401 was asked for; the offline check below is about everything else.
  const expected = network.badResponses.findIndex((r) => r.includes(`/${slug}/pets -> 401`));
  if (expected >= 0) network.badResponses.splice(expected, 1);

  step('developer 6 quick start');
  const quickStart = page.getByRole('region', { name: 'Quick start' });
  const wanted = `/${slug}/pets?user_key=YOUR_KEY`;
  const sample = quickStart.locator('details').filter({ hasText: wanted });
  await expectVisible(quickStart.locator('details summary').first(), 'a <details> sample in "Quick start"');
  assert.equal(await sample.count(), 1, `one Quick start sample whose curl contains ${wanted}; samples: ${JSON.stringify(await quickStart.locator('details').allTextContents())}`);
  await sample.locator('summary').click();
  const curl = sample.locator('h3:text-is("curl") + pre');
  await expectVisible(curl.filter({ hasText: wanted }), `the curl sample containing ${wanted}`, { actual: () => sample.innerText() });

  // 7. Register an application on Starter.
  step('developer 7 choose Starter');
  await page.getByRole('link', { name: 'Choose Starter', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === '/apps/new' && !!u.searchParams.get('plan'), '/apps/new?plan=<id>');
  const planId = new URL(page.url()).searchParams.get('plan');
  const planSelect = page.getByLabel(label('plan'));
  assert.equal(await planSelect.inputValue(), planId, 'the chosen plan is preselected');
  const selectedText = await planSelect.evaluate((el) => el.options[el.selectedIndex].textContent);
  assert.ok(selectedText.includes(names.api) && selectedText.includes('Starter'), `the preselected option names the API and Starter: ${JSON.stringify(selectedText)}`);

  step('developer 7 register application');
  await page.getByLabel(label('name')).fill(names.app);
  await page.getByRole('button', { name: 'Register application', exact: true }).click();
  await expectUrl(page, (u) => APP_PATH_RE.test(u.pathname), '/apps/<uuid>', { failOn: page.getByRole('alert') });
  const newKey = page.getByTestId('new-key');
  await expectVisible(newKey, 'the new key ([data-testid="new-key"])');
  const key = (await newKey.first().textContent() || '').trim();
  assert.match(key, KEY_RE, 'the new key has the user_key format');

  // 8. Nothing left 127.0.0.1.
  step('developer 8 offline');
  assertOffline(network, consoleErrors, 'developer');
}

for (let n = 1; n <= REPEAT; n++) {
  const name = `admin journey ${n}/${REPEAT}`;
  test(name, { timeout: 240_000 }, async (t) => {
    const id = randomBytes(3).toString('hex');
    const names = { api: `Pets ${id}`, title: `Pets e2e ${id}`, app: `Pets app ${id}` };
    let times = [];
    try {
      let found;
      await withPage(browser(), `${name} admin`, async (page, ctx) => {
        const watch = stopwatch(ctx.step);
        try {
          found = await adminPart(page, { ...ctx, step: watch.step }, names);
        } finally {
          times = times.concat(watch.finish());
        }
      });
      await withPage(browser(), `${name} developer`, async (page, ctx) => {
        const watch = stopwatch(ctx.step);
        try {
          await developerPart(page, { ...ctx, step: watch.step }, names, found);
        } finally {
          times = times.concat(watch.finish());
        }
      });
    } finally {
      const total = times.reduce((s, [, ms]) => s + ms, 0);
      t.diagnostic(`steps (ms): ${times.map(([s, ms]) => `${s} ${ms}`).join(', ')}; total ${total}`);
    }
  });
}
