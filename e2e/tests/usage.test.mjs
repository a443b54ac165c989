// The usage journey, in a real browser, with real traffic (acceptance of the
// analytics issue): calls go through the real gateway agent that `tollgate
// dev` starts to an upstream on 127.0.0.1, against a plan allowing 10 hits a
// minute; the agent reports usage to the server (flush every 200 ms, set by
// e2e/run), and two server replicas run the alert job on the same database.
//
// Admin (own context): imports an API whose upstream is this file's HTTP
// server, adds a published plan "Tenner" (10 hits a minute), publishes.
// Developer (the seeded dev@example.com, own context): registers an
// application on Tenner, then:
//   8 calls over two methods -> 80% -> exactly one mail and the bar at 80%;
//   2 more -> 100%, then 429s -> exactly one more mail and the bar at 100%;
//   the admin suspends the application -> 403 application_not_live;
//   the usage page shows exactly the counted calls per method and in total,
//   the status classes, and the 429s and 403s in "Recent failed calls", each
//   with the key's prefix; every CSV equals the page; the notifications page
//   lists both alerts with the unread count in the header (also as served by
//   the second replica). Both contexts stay on 127.0.0.1, with zero console
//   errors and zero CSP violations.
//
// Expected numbers come from the answers the gateway gave (a 200 is a call,
// a 429 or 403 a failed call), so the test states exactly what it sent.
// The contract with the pages is described in e2e/README.md.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { BASE_URL, MAIL_DIR, browserForTheseTests, expectUrl, expectVisible, fetchErrors, gotoOk, watchNetwork, withPage } from '../lib/browser.mjs';
import { parseMessage, waitForMail } from '../lib/mail.mjs';

const GATEWAY_URL = (process.env.E2E_GATEWAY_URL || '').replace(/\/$/, '');
const REPLICA_URL = (process.env.E2E_REPLICA_URL || '').replace(/\/$/, '');
const MAIL_TIMEOUT_MS = Number(process.env.E2E_MAIL_TIMEOUT_MS || 30_000);
/** How long usage, a config change or a mail may take to travel. */
const TRAVEL_TIMEOUT_MS = 30_000;

const ADMIN_EMAIL = 'admin@tollgate.local';
const ADMIN_PASSWORD = 'tollgate-admin-demo';
const DEV_EMAIL = 'dev@example.com';
const DEV_PASSWORD = 'tollgate-developer-demo';
const LIMIT = 10;

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const ADMIN_API_PATH_RE = new RegExp(`^/admin/apis/(${UUID})/?$`);
const APP_PATH_RE = new RegExp(`^/apps/(${UUID})/?$`);
const KEY_RE = /^tg_uk_[0-9A-Za-z]{39}$/;
const label = (word) => new RegExp(`^\\s*${word}\\b`, 'i');

/** Two operations: the two methods the traffic is spread over. */
function petsSpec(title) {
  return `openapi: 3.0.3
info:
  title: ${title}
  version: '1.0'
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      responses:
        '200': {description: The pets}
  /pets/{petId}:
    get:
      operationId: getPet
      summary: One pet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: string}}
      responses:
        '200': {description: The pet}
`;
}

function slugOf(name) {
  return name.toLowerCase().replace(/[^0-9a-z]+/g, '-').replace(/^-+|-+$/g, '');
}

/** The upstream: answers every request 200 with a little JSON, on a free port of 127.0.0.1. */
async function startUpstream() {
  const received = [];
  const server = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, path: req.url }));
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, received, close: () => new Promise((r) => server.close(r)) };
}

/** Polls `probe()` until it returns something truthy, or fails after `timeoutMs` with `what`. */
async function eventually(what, probe, { timeoutMs = TRAVEL_TIMEOUT_MS, pollMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last && last.ok !== false) return last.value ?? last;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms; last seen: ${JSON.stringify(last?.seen ?? last)}`);
    await delay(pollMs); // polling interval of a deadline-bounded poll
  }
}

function assertOffline(network, consoleErrors, who) {
  const problems = [...network.problems(), ...fetchErrors(consoleErrors).map((e) => `console: ${e}`)];
  assert.deepEqual(problems, [], `${who}: the pages must work offline, from 127.0.0.1 only`);
  assert.deepEqual(consoleErrors, [], `${who}: no console errors`);
}

async function signIn(page, email, password, landing) {
  await gotoOk(page, '/login');
  await page.getByLabel(label('e-?mail')).fill(email);
  await page.getByLabel(label('password')).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expectUrl(page, (u) => u.pathname === landing, `${landing} after signing in as ${email}`, { failOn: page.getByRole('alert') });
}

/** Minimal CSV reader (quoted fields with "" escapes; the server's CSV). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  const [head, ...body] = rows.filter((r) => r.length > 1 || r[0] !== '');
  return body.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i]])));
}

/** One CSV export of the usage page, through the developer's session. */
async function usageCsv(context, appId, table, period) {
  const res = await context.request.get(`${BASE_URL}/apps/${appId}/usage.csv?table=${table}&period=${period}`);
  assert.equal(res.status(), 200, `GET usage.csv?table=${table} answered ${res.status()}`);
  assert.match(res.headers()['content-type'] || '', /^text\/csv/, 'the CSV export is text/csv');
  return parseCsv(await res.text());
}

/** Every mail in the sink addressed to `to` whose subject contains `needle`: their subjects. */
async function mailSubjects(to, needle) {
  const subjects = [];
  for (const name of (await readdir(MAIL_DIR)).filter((n) => n.endsWith('.eml')).sort()) {
    const message = parseMessage(await readFile(join(MAIL_DIR, name)));
    const envelope = [...message.deliveredTo, ...message.to].join(' ').toLowerCase();
    if (envelope.includes(to.toLowerCase()) && message.subject.includes(needle)) subjects.push(message.subject);
  }
  return subjects;
}

/** The developer's gateway client: counts every answer by status and operation. */
function gatewayClient(slug, key) {
  const answers = []; // { op, status, error, remaining }
  const call = async (op, path) => {
    const res = await fetch(`${GATEWAY_URL}/${slug}${path}${path.includes('?') ? '&' : '?'}user_key=${key}`);
    const text = await res.text();
    let error;
    try {
      error = JSON.parse(text).error;
    } catch {
      error = undefined;
    }
    const answer = { op, path, status: res.status, error, remaining: res.headers.get('ratelimit-remaining'), limit: res.headers.get('ratelimit-limit') };
    answers.push(answer);
    return answer;
  };
  return {
    answers,
    listPets: () => call('listPets', '/pets'),
    getPet: (id) => call('getPet', `/pets/${id}`),
    /** The agent's own limits report: not a call, not usage, not a failed call. */
    async limits() {
      const res = await fetch(`${GATEWAY_URL}/${slug}/_tollgate/limits?user_key=${key}`);
      return { status: res.status, body: await res.text() };
    },
    count(pred) {
      return answers.filter(pred).length;
    },
  };
}

/** The start of the current UTC minute, as Unix ms (the limit's window). */
const minuteOf = (ms) => Math.floor(ms / 60_000) * 60_000;

const browser = browserForTheseTests();

test('usage journey 1/1', { timeout: 300_000 }, async (t) => {
  assert.ok(GATEWAY_URL, 'E2E_GATEWAY_URL is not set: run the tests with e2e/run');
  const id = randomBytes(3).toString('hex');
  const names = { api: `Usage pets ${id}`, app: `Usage app ${id}` };
  const slug = slugOf(names.api);
  const upstream = await startUpstream();
  const times = [];
  const mark = (what) => times.push(`${what} ${new Date().toISOString().slice(17, 23)}`);
  try {
    await withPage(browser(), 'usage journey admin', async (admin, adminCtx) => {
      const adminNet = await watchNetwork(adminCtx.context);
      const step = adminCtx.step;

      // ---- the provider's side: an API on our upstream, a plan of 10 hits a minute.
      step('admin: sign in');
      await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD, '/admin');
      step('admin: import the API');
      await gotoOk(admin, '/admin/apis/new');
      await admin.getByLabel('Document', { exact: true }).fill(petsSpec(`Usage e2e ${id}`));
      await admin.getByLabel("Name (optional: defaults to the document's title)", { exact: true }).fill(names.api);
      await admin.getByLabel('Upstream URL', { exact: true }).fill(upstream.url);
      await admin.getByRole('button', { name: 'Import', exact: true }).click();
      await expectUrl(admin, (u) => ADMIN_API_PATH_RE.test(u.pathname), '/admin/apis/<uuid> after importing', { failOn: admin.getByRole('alert') });
      const apiPath = new URL(admin.url()).pathname.replace(/\/$/, '');

      step('admin: plan Tenner, 10 hits a minute');
      await admin.getByRole('link', { name: 'New plan', exact: true }).click();
      await admin.getByLabel('Name', { exact: true }).fill('Tenner');
      await admin.getByLabel('System name', { exact: true }).fill('tenner');
      await admin.getByLabel('Monthly fee', { exact: true }).fill('0');
      await admin.getByLabel('Currency', { exact: true }).fill('EUR');
      await admin.getByRole('checkbox', { name: 'Published (developers can choose it)', exact: true }).check();
      await admin.getByLabel('Limit 1 metric', { exact: true }).fill('hits');
      await admin.getByLabel('Limit 1 period', { exact: true }).selectOption('minute');
      await admin.getByLabel('Limit 1 max', { exact: true }).fill(String(LIMIT));
      await admin.getByRole('button', { name: 'Save plan', exact: true }).click();
      await expectUrl(admin, (u) => u.pathname.replace(/\/$/, '') === apiPath, `back on ${apiPath} after saving the plan`, {
        failOn: admin.locator('[role="alert"], .field-error, .flash-error'),
      });

      step('admin: publish');
      await admin.getByRole('button', { name: 'Publish', exact: true }).click();
      const heading = admin.getByRole('heading', { level: 1 });
      await expectVisible(heading.locator('.badge').filter({ hasText: /^\s*published\s*$/ }), 'a "published" badge', {
        actual: () => heading.allInnerTexts(),
        failOn: admin.getByRole('alert'),
      });

      await withPage(browser(), 'usage journey developer', async (page, devCtx) => {
        const { context } = devCtx;
        const network = await watchNetwork(context);
        const dstep = (s) => { devCtx.step(s); step(`(developer) ${s}`); };

        // ---- the developer registers an application on Tenner.
        dstep('developer: sign in');
        await signIn(page, DEV_EMAIL, DEV_PASSWORD, '/dashboard');
        const unreadBadge = page.getByTestId('unread-count');
        const unreadBefore = (await unreadBadge.count()) ? Number((await unreadBadge.first().innerText()).trim()) : 0;

        dstep('developer: register an application on Tenner');
        await gotoOk(page, `/apis/${slug}`);
        await page.getByRole('link', { name: 'Choose Tenner', exact: true }).click();
        await expectUrl(page, (u) => u.pathname === '/apps/new' && !!u.searchParams.get('plan'), '/apps/new?plan=<id>');
        await page.getByLabel(label('name')).fill(names.app);
        await page.getByRole('button', { name: 'Register application', exact: true }).click();
        await expectUrl(page, (u) => APP_PATH_RE.test(u.pathname), '/apps/<uuid>', { failOn: page.getByRole('alert') });
        const appId = APP_PATH_RE.exec(new URL(page.url()).pathname)[1];
        const key = ((await page.getByTestId('new-key').first().textContent()) || '').trim();
        assert.match(key, KEY_RE, 'the new key has the user_key format');
        const prefix = key.slice(0, 10);
        const gw = gatewayClient(slug, key);

        dstep('the agent knows the key');
        await eventually('the agent answering the limits report of the new key with 200', async () => {
          const r = await gw.limits();
          return { ok: r.status === 200, seen: r };
        });
        mark('key known');

        // The whole climb to 100% and the bar's check fall in one limit
        // window (a UTC minute): start early in a minute.
        dstep('waiting for the start of a minute');
        await eventually('the first 40 s of a minute', async () => ({ ok: Date.now() - minuteOf(Date.now()) < 40_000 }), { timeoutMs: 25_000, pollMs: 250 });
        const windowStart = minuteOf(Date.now());
        mark('traffic');

        // ---- 8 calls over two methods: 80%.
        dstep('8 calls: 80%');
        for (let i = 0; i < 5; i++) await gw.listPets();
        for (let i = 0; i < 3; i++) await gw.getPet(i + 1);
        assert.deepEqual(gw.answers.map((a) => a.status), Array(8).fill(200), `the first 8 calls are forwarded: ${JSON.stringify(gw.answers)}`);
        assert.equal(gw.answers[7].limit, String(LIMIT), 'RateLimit-Limit names the plan limit');
        assert.equal(gw.answers[7].remaining, '2', 'RateLimit-Remaining after 8 of 10');

        dstep('the 80% mail');
        const mail80 = await waitForMail(MAIL_DIR, { to: DEV_EMAIL, subject: `${names.app} used 80%`, timeoutMs: MAIL_TIMEOUT_MS });
        mark('80% mail');
        dstep('the bar at 80%');
        await gotoOk(page, `/apps/${appId}/usage`);
        const numbers = page.getByTestId('limits').getByTestId('limit-numbers');
        await expectVisible(numbers.filter({ hasText: '8 / 10 (80%)' }), 'the limit bar at "8 / 10 (80%)"', { actual: () => numbers.allInnerTexts() });
        assert.equal(minuteOf(Date.now()), windowStart, 'still in the same limit window (a slow run: the climb took over 20 s)');

        // ---- 2 more: 100%; then 3 refused with 429.
        dstep('2 more calls: 100%, then 429s');
        await gw.listPets();
        await gw.getPet(9);
        for (let i = 0; i < 3; i++) await gw.listPets();
        assert.deepEqual(gw.answers.slice(8).map((a) => a.status), [200, 200, 429, 429, 429], `calls 9-13: ${JSON.stringify(gw.answers.slice(8))}`);
        assert.equal(gw.answers[9].remaining, '0', 'RateLimit-Remaining after 10 of 10');
        assert.equal(gw.answers[10].error, 'limit_exceeded');

        dstep('the 100% mail');
        const mail100 = await waitForMail(MAIL_DIR, { to: DEV_EMAIL, subject: `${names.app} reached 100%`, timeoutMs: MAIL_TIMEOUT_MS });
        mark('100% mail');
        dstep('the bar at 100%');
        await gotoOk(page, `/apps/${appId}/usage`);
        await expectVisible(numbers.filter({ hasText: '10 / 10 (100%)' }), 'the limit bar at "10 / 10 (100%)"', { actual: () => numbers.allInnerTexts() });
        const bar = page.getByTestId('limits').locator('svg.limit-svg');
        assert.match((await bar.getAttribute('aria-label')) || '', /^hits per minute: 10 of 10 used \(100%\)/i, 'the bar names its numbers');
        const fill = bar.locator('rect.limit-fill');
        assert.equal(await fill.getAttribute('width'), '100', 'the bar is full');
        assert.match((await fill.getAttribute('class')) || '', /\blimit-over\b/, 'the full bar is marked over');
        const limitsCsv = await usageCsv(context, appId, 'limits', '1h');
        assert.equal(minuteOf(Date.now()), windowStart, 'still in the same limit window (a slow run: the climb took over 20 s)');
        assert.deepEqual(
          limitsCsv.map((r) => [r.metric, r.period, r.used, r.max, r.percent]),
          [['Hits', 'minute', '10', '10', '100']],
          'the limits CSV equals the bar',
        );

        // ---- the admin suspends the application: 403 application_not_live.
        dstep('admin suspends the application');
        await gotoOk(admin, `/admin/applications?q=${encodeURIComponent(names.app)}`);
        const row = admin.getByTestId('applications').locator('tbody tr').filter({ hasText: names.app });
        assert.equal(await row.count(), 1, 'one row for the application in the admin list');
        await row.getByRole('button', { name: 'Suspend', exact: true }).click();
        await expectVisible(
          admin.getByTestId('applications').locator('tbody tr').filter({ hasText: names.app }).locator('.badge').filter({ hasText: /^\s*suspended\s*$/ }),
          'the application "suspended" in the admin list',
          { failOn: admin.getByRole('alert') },
        );
        await eventually('the agent refusing the suspended application (limits report 403)', async () => {
          const r = await gw.limits();
          return { ok: r.status === 403, seen: r };
        });
        dstep('2 calls refused with 403');
        await gw.listPets();
        await gw.getPet(7);
        assert.deepEqual(gw.answers.slice(13).map((a) => [a.status, a.error]), [[403, 'application_not_live'], [403, 'application_not_live']]);
        mark('403s');

        // ---- what the gateway answered is what the page must show.
        const ok = (op) => gw.count((a) => a.status === 200 && (!op || a.op === op));
        const want = { hits: ok(), listPets: ok('listPets'), getPet: ok('getPet') };
        const wantFailed = { 429: gw.count((a) => a.status === 429), 403: gw.count((a) => a.status === 403) };
        assert.deepEqual(want, { hits: 10, listPets: 6, getPet: 4 });
        assert.deepEqual(wantFailed, { 429: 3, 403: 2 });
        assert.equal(upstream.received.length, want.hits, `the upstream got the forwarded calls only: ${JSON.stringify(upstream.received)}`);

        dstep('the failed calls reach the server');
        await eventually('the 5 failed calls in the failed-calls CSV', async () => {
          const rows = await usageCsv(context, appId, 'failed', '1h');
          return { ok: rows.length >= 5, seen: rows.length };
        });
        mark('failed calls in');

        dstep('the usage page');
        await gotoOk(page, `/apps/${appId}/usage`);
        const period = await page.locator('#period').inputValue();
        const totals = page.getByTestId('usage-totals');
        const calls = async (metric) => {
          const cell = totals.locator(`tr[data-metric="${metric}"] td.calls`);
          assert.equal(await cell.count(), 1, `one row for ${metric} in the usage table`);
          return Number((await cell.innerText()).trim());
        };
        const shown = { hits: await calls('hits'), listPets: await calls('listPets'), getPet: await calls('getPet') };
        assert.deepEqual(shown, want, 'the usage table shows exactly the forwarded calls, per method and in total');
        const statusCells = await page.getByTestId('status-totals').locator('tbody td').allInnerTexts();
        assert.deepEqual(statusCells.slice(0, 4).map((s) => Number(s.trim())), [want.hits, 0, wantFailed[429] + wantFailed[403], 0], 'status classes: the forwarded 2xx, the refused 4xx');

        const failedRows = page.getByTestId('failed-calls').locator('tbody tr');
        const failed = await failedRows.evaluateAll((rows) => rows.map((r) => Array.from(r.cells, (c) => c.innerText.trim())));
        const byStatus = (s) => failed.filter((r) => r[3] === String(s));
        assert.equal(failed.length, 5, `the recent failed calls table lists the 3 429s and the 2 403s: ${JSON.stringify(failed)}`);
        assert.equal(byStatus(429).length, wantFailed[429], '429s listed');
        assert.equal(byStatus(403).length, wantFailed[403], '403s listed');
        for (const r of byStatus(429)) assert.equal(r[4], 'limit_exceeded');
        for (const r of byStatus(403)) assert.equal(r[4], 'application_not_live');
        for (const r of failed) {
          assert.equal(r[1], 'GET', 'method');
          assert.equal(r[5], `${prefix}…`, 'the key prefix of the call');
          assert.match(r[2], /\/pets/, 'the operation or path');
        }
        assert.deepEqual(byStatus(403).map((r) => r[2].split(/\s+/)[0]).sort(), ['getPet', 'listPets'], 'the 403s name their operations');

        // ---- the CSV exports equal the page.
        dstep('CSV exports');
        const usageRows = await usageCsv(context, appId, 'usage', period);
        const csvSum = (metric) => usageRows.filter((r) => r.metric === metric).reduce((s, r) => s + Number(r.calls), 0);
        assert.deepEqual({ hits: csvSum('hits'), listPets: csvSum('listPets'), getPet: csvSum('getPet') }, shown, 'the usage CSV sums to the page');
        assert.deepEqual(
          [...new Set(usageRows.filter((r) => r.parent_metric).map((r) => `${r.metric}<${r.parent_metric}`))].sort(),
          ['getPet<hits', 'listPets<hits'],
          'the methods are children of hits in the CSV',
        );
        const statusRows = await usageCsv(context, appId, 'status', period);
        const statusSum = (k) => statusRows.reduce((s, r) => s + Number(r[k]), 0);
        assert.deepEqual(['2xx', '3xx', '4xx', '5xx'].map(statusSum), statusCells.slice(0, 4).map((s) => Number(s.trim())), 'the status CSV sums to the page');
        const failedCsv = await usageCsv(context, appId, 'failed', period);
        assert.deepEqual(
          failedCsv.map((r) => [r.method, r.status, r.error, `${r.key_prefix}…`]),
          failed.map((r) => [r[1], r[3], r[4], r[5]]),
          'the failed-calls CSV lists the same calls, in the same order',
        );

        // ---- alerts: one mail per level, and the portal's notifications.
        dstep('notifications');
        await gotoOk(page, '/notifications');
        const list = page.getByTestId('notifications');
        const titles = [`${names.app} reached 100% of its`, `${names.app} used 80% of its`];
        for (const title of titles) {
          await expectVisible(list.locator('li').filter({ hasText: title }), `the notification "${title}…"`, { actual: () => list.innerText() });
        }
        const mine = list.locator('li').filter({ hasText: names.app });
        assert.equal(await mine.count(), 2, `two notifications of ${names.app}: ${JSON.stringify(await mine.allInnerTexts())}`);
        for (const item of await mine.all()) {
          assert.equal(await item.locator('.badge').filter({ hasText: 'unread' }).count(), 1, 'each is unread');
          assert.equal(await item.getByRole('link').getAttribute('href'), `/apps/${appId}/usage`, 'each links to the usage page');
        }
        assert.equal(Number((await page.getByTestId('unread-count').innerText()).trim()), unreadBefore + 2, 'the header counts the two unread notifications');
        if (REPLICA_URL) {
          dstep('notifications on the second replica');
          await gotoOk(page, `${REPLICA_URL}/notifications`);
          assert.equal(await page.getByTestId('notifications').locator('li').filter({ hasText: names.app }).count(), 2, 'the second replica shows the same notifications');
          assert.equal(Number((await page.getByTestId('unread-count').innerText()).trim()), unreadBefore + 2, 'and the same unread count');
        }

        dstep('exactly one mail per level');
        // The suspension that made the 403s is mailed too, once (waited for: the outbox sends it).
        await waitForMail(MAIL_DIR, { to: DEV_EMAIL, subject: `Your application ${names.app} was suspended`, timeoutMs: MAIL_TIMEOUT_MS });
        const all = await mailSubjects(DEV_EMAIL, names.app);
        const subjects = all.filter((subject) => subject.endsWith(' limit'));
        assert.deepEqual(subjects.sort(), [mail100.message.subject, mail80.message.subject].sort(), `one mail at 80% and one at 100%: ${JSON.stringify(all)}`);
        assert.deepEqual(all.filter((subject) => subject.endsWith(' was suspended')), [`Your application ${names.app} was suspended`], JSON.stringify(all));
        assert.match(mail80.message.subject, /used 80% of its Hits limit$/);
        assert.match(mail100.message.subject, /reached 100% of its Hits limit$/);

        dstep('offline, no console errors');
        assertOffline(network, devCtx.consoleErrors, 'developer');
      });
      assertOffline(adminNet, adminCtx.consoleErrors, 'admin');
    });
  } finally {
    t.diagnostic(`times (s.ms of the minute): ${times.join(', ')}`);
    await upstream.close();
  }
});
