// Browser plumbing shared by the tests: Debian's chromium driven by
// playwright-core (which never downloads a browser of its own), one fresh
// context per test, and evidence (screenshot, HTML, URL) kept when a test fails.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

export const BASE_URL = (process.env.E2E_BASE_URL || '').replace(/\/$/, '');
export const MAIL_DIR = process.env.E2E_MAIL_DIR || '';
export const ARTIFACTS_DIR = process.env.E2E_ARTIFACTS_DIR || '';
export const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
/** How long one action or wait may take before the test fails. */
export const ACTION_TIMEOUT_MS = Number(process.env.E2E_ACTION_TIMEOUT_MS || 30_000);

export function requireEnv() {
  if (!BASE_URL) throw new Error('E2E_BASE_URL is not set: run the tests with e2e/run');
}

// Flags for a machine with a closed network: no background fetches,
// component updates, sync or QUIC probes that would stall or misbehave.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches chromium. Playwright gives each launch a fresh temporary user data dir. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/**
 * One browser for the tests of a file: launched before them, once the
 * environment is checked, and closed after them. Returns a getter, since the
 * browser exists only once the tests run.
 */
export function browserForTheseTests() {
  let browser;
  before(async () => {
    requireEnv();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  return () => browser;
}

/** A fresh context (own cookies and storage) whose pages resolve paths against E2E_BASE_URL. */
export async function newContext(browser) {
  const context = await browser.newContext({ baseURL: BASE_URL, locale: 'en-GB' });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  return context;
}

function slug(s) {
  return s.replace(/[^0-9A-Za-z]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
}

/**
 * Runs `body(page, context)` in a fresh context; on failure saves a
 * screenshot and the page's HTML under E2E_ARTIFACTS_DIR and adds the URL,
 * the step reached and the artefacts' paths to the error message.
 */
export async function withPage(browser, name, body) {
  const context = await newContext(browser);
  const csp = await watchContentSecurityPolicy(context);
  const page = await context.newPage();
  const steps = { current: 'start' };
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  try {
    await body(page, { context, consoleErrors, step: (s) => { steps.current = s; } });
    steps.current = 'content security policy';
    const problems = csp.problems();
    if (problems.length) {
      throw new Error(`the pages broke or lacked their Content-Security-Policy:\n      ${problems.join('\n      ')}`);
    }
  } catch (err) {
    const notes = [`step: ${steps.current}`, `url: ${page.url()}`];
    if (ARTIFACTS_DIR) {
      const base = join(ARTIFACTS_DIR, slug(name));
      try {
        await mkdir(ARTIFACTS_DIR, { recursive: true });
        await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 10_000 });
        await writeFile(`${base}.html`, await page.content());
        notes.push(`screenshot: ${base}.png`, `html: ${base}.html`);
      } catch (e) {
        notes.push(`(no artefacts: ${e.message.split('\n')[0]})`);
      }
    }
    if (consoleErrors.length) notes.push(`browser console errors: ${JSON.stringify(consoleErrors.slice(0, 5))}`);
    err.message = `${err.message}\n    ${notes.join('\n    ')}`;
    throw err;
  } finally {
    await context.close().catch(() => {});
  }
}

/** The directives every page of the server must carry in its policy. */
const REQUIRED_CSP = ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"];

/**
 * Watches every page of `context` for Content-Security-Policy violations
 * (the `securitypolicyviolation` event, reported from a script the browser
 * injects before any of the page's own, and Chromium's "Refused to ..."
 * console messages) and checks that every HTML document from the server
 * carried a policy with the required directives and no 'unsafe-inline'.
 * Returns { violations, unprotected, problems() }. Call it before the
 * context's first navigation.
 */
export async function watchContentSecurityPolicy(context) {
  const violations = [];
  const unprotected = [];
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
    });
  });
  context.on('console', (msg) => {
    const text = msg.text();
    if (/^CSP violation:|content security policy/i.test(text)) violations.push(`${msg.page()?.url() ?? '?'}: ${text}`);
  });
  context.on('response', async (response) => {
    if (response.request().resourceType() !== 'document' || !response.url().startsWith(BASE_URL)) return;
    const headers = await response.allHeaders().catch(() => ({}));
    if (!(headers['content-type'] || '').startsWith('text/html')) return;
    const policy = headers['content-security-policy'] || '';
    const missing = REQUIRED_CSP.filter((d) => !policy.includes(d));
    if (missing.length || policy.includes('unsafe-inline')) {
      unprotected.push(`${response.url()} (${response.status()}): policy ${JSON.stringify(policy)}`);
    }
    if (headers['x-content-type-options'] !== 'nosniff') unprotected.push(`${response.url()}: no nosniff`);
  });
  return {
    violations,
    unprotected,
    problems() {
      return [...violations.map((v) => `violation: ${v}`), ...unprotected.map((u) => `unprotected page: ${u}`)];
    },
  };
}

/**
 * Races `waiting` against `failOn` (a locator, e.g. the page's role=alert
 * error) becoming visible, so a rejected form fails at once with the
 * page's own message instead of after a timeout.
 */
async function unlessVisible(waiting, failOn, what, timeout) {
  if (!failOn) return waiting;
  const failed = failOn
    .first()
    .waitFor({ state: 'visible', timeout })
    .then(
      async () => {
        const text = await failOn.first().innerText().catch(() => '?');
        throw new Error(`expected ${what}, but the page shows ${JSON.stringify(text.trim())}`);
      },
      () => new Promise(() => {}), // never visible: let `waiting` decide
    );
  return Promise.race([waiting, failed]);
}

/**
 * Waits until `locator` (usually narrowed with .filter({ hasText })) is
 * visible: Playwright's auto-waiting, with a readable failure that shows
 * what `actual()` found instead.
 */
export async function expectVisible(locator, what, { timeout = ACTION_TIMEOUT_MS, actual, failOn } = {}) {
  const waiting = locator
    .first()
    .waitFor({ state: 'visible', timeout })
    .catch(async (err) => {
      let found = '';
      if (actual) {
        try {
          found = `; found instead: ${JSON.stringify(await actual())}`;
        } catch {
          /* the page may be gone */
        }
      }
      throw new Error(`expected ${what} within ${timeout} ms${found}\n  (${err.message.split('\n')[0]})`);
    });
  await unlessVisible(waiting, failOn, what, timeout);
}

/** Waits for the page's URL to satisfy `predicate(URL)`, with a readable failure. */
export async function expectUrl(page, predicate, what, { timeout = ACTION_TIMEOUT_MS, failOn } = {}) {
  const waiting = page.waitForURL((url) => predicate(url), { timeout }).catch((err) => {
    throw new Error(`expected the URL to be ${what} within ${timeout} ms; it is ${page.url()}\n  (${err.message.split('\n')[0]})`);
  });
  await unlessVisible(waiting, failOn, `the URL to be ${what}`, timeout);
}

/** Opens `url` and fails at once, with the status, when it does not answer 2xx. */
export async function gotoOk(page, url) {
  const response = await page.goto(url);
  if (response && !response.ok()) {
    throw new Error(`GET ${url} answered ${response.status()} ${response.statusText()} (at ${page.url()})`);
  }
  return response;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * Keeps `context` offline: every request whose host is not 127.0.0.1 or
 * localhost is aborted and recorded (the pages must not depend on a CDN,
 * fonts, a validator or any other outside service). Also records requests
 * that failed and sub-resources (scripts, styles, fetches, images, fonts)
 * that answered 4xx/5xx. Call it before the context's first navigation.
 * Returns { blocked, failed, badResponses } (arrays of strings, filled as
 * the pages load) and problems(), which lists them all.
 */
export async function watchNetwork(context) {
  const blocked = [];
  const failed = [];
  const badResponses = [];
  await context.route('**/*', (route) => {
    const request = route.request();
    let url;
    try {
      url = new URL(request.url());
    } catch {
      url = undefined;
    }
    if (url && (url.protocol === 'http:' || url.protocol === 'https:') && LOCAL_HOSTS.has(url.hostname)) {
      return route.continue();
    }
    blocked.push(`${request.method()} ${request.url()} (${request.resourceType()})`);
    return route.abort('blockedbyclient');
  });
  context.on('requestfailed', (request) => {
    const error = request.failure()?.errorText ?? '';
    if (error.includes('ERR_BLOCKED_BY_CLIENT') && blocked.some((b) => b.includes(request.url()))) return; // already listed
    // The browser fetches a page's icon on its own and drops the fetch when the page is
    // left first: no page waited for it (the icon itself is checked over HTTP).
    if (error.includes('ERR_ABORTED') && new URL(request.url()).pathname === '/static/img/favicon.svg') return;
    failed.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText ?? 'failed'}`);
  });
  const SUBRESOURCES = new Set(['script', 'stylesheet', 'fetch', 'xhr', 'image', 'font']);
  context.on('response', (response) => {
    const request = response.request();
    if (response.status() >= 400 && SUBRESOURCES.has(request.resourceType())) {
      badResponses.push(`${request.method()} ${response.url()} -> ${response.status()}`);
    }
  });
  return {
    blocked,
    failed,
    badResponses,
    problems() {
      return [
        ...blocked.map((b) => `blocked (not 127.0.0.1): ${b}`),
        ...failed.map((f) => `failed: ${f}`),
        ...badResponses.map((r) => `error response: ${r}`),
      ];
    },
  };
}

/**
 * Console messages that tell of a failed or refused fetch (network errors,
 * CSP, CORS). Chromium's "the server responded with a status of N" is left
 * out: a form answering 422 does that on purpose, and sub-resources that
 * answer 4xx/5xx are caught by watchNetwork.
 */
export function fetchErrors(consoleErrors) {
  return consoleErrors.filter(
    (text) =>
      /failed to (load|fetch)|net::err_|refused to|content security policy|cors|networkerror|blocked/i.test(text) &&
      !/the server responded with a status of \d+/i.test(text),
  );
}
