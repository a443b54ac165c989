// The harness's own mail reader, on messages like those the portal sends.
// Needs no server or browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodeHeaderValue, decodeQuotedPrintable, findUrl, parseMessage, waitForMail } from '../lib/mail.mjs';

const fixture = new URL('./fixtures/verify-multipart-qp.eml', import.meta.url);

test('mail reader: multipart/alternative with quoted-printable soft breaks and =3D', async () => {
  const message = parseMessage(await readFile(fixture));
  assert.equal(message.subject, 'Verify your email ✓');
  assert.deepEqual(message.deliveredTo, ['x@example.com']);
  assert.deepEqual(message.parts.map((p) => p.type), ['text/plain', 'text/html']);
  assert.match(message.parts[0].text, /^Hello é\r?\n/);
  assert.equal(findUrl(message, '/verify?token='), `http://127.0.0.1:1/verify?token=${'A'.repeat(80)}`);
});

test('mail reader: html-only base64 body, &amp; in the link, encoded-word subject', () => {
  const html = '<p>Hi</p><a href="http://h:1/verify?token=t0k3n&amp;next=%2F">Verify</a>';
  const raw = [
    'To: dev@example.com',
    'Subject: =?utf-8?q?Verify_your_email?= =?utf-8?b?IOKckw==?=',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from(html).toString('base64').replace(/(.{20})/g, '$1\n'),
  ].join('\n');
  const message = parseMessage(raw);
  assert.equal(message.subject, 'Verify your email ✓');
  assert.equal(findUrl(message, '/verify?token='), 'http://h:1/verify?token=t0k3n&next=%2F');
});

test('mail reader: quoted-printable and RFC 2047 decoding', () => {
  assert.equal(decodeQuotedPrintable('a=3Db=\r\nc =C3=A9'), 'a=bc é');
  assert.equal(decodeHeaderValue('=?UTF-8?B?w6k=?= x'), 'é x');
});

test('mail reader: waitForMail finds a message written after it started polling', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-e2e-mail-'));
  try {
    const waiting = waitForMail(dir, { to: 'late@example.com', subject: 'Verify', timeoutMs: 5_000, pollMs: 20 });
    // Written the way the sink writes: a temporary name, then a rename.
    await writeFile(join(dir, '.x.tmp'), 'To: late@example.com\nSubject: Verify your email\n\nhttp://h/verify?token=1\n');
    await rename(join(dir, '.x.tmp'), join(dir, '1-x.eml'));
    const { message } = await waiting;
    assert.equal(findUrl(message, '/verify?token='), 'http://h/verify?token=1');
    await assert.rejects(
      waitForMail(dir, { to: 'nobody@example.com', subject: 'Verify', timeoutMs: 50, pollMs: 10 }),
      /no mail to nobody@example.com/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
