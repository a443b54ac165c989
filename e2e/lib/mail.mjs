// Reading the messages that smtp_sink.py leaves in E2E_MAIL_DIR: a small,
// dependency-free MIME reader (headers, RFC 2047 words, multipart,
// quoted-printable, base64) and a poll for "the message to X about Y".

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

function splitHeadBody(text) {
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return [text, ''];
  return [text.slice(0, m.index), text.slice(m.index + m[0].length)];
}

/** Header name (lower case) -> list of unfolded values, in order. */
function parseHeaders(head) {
  const headers = new Map();
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (!headers.has(name)) headers.set(name, []);
    headers.get(name).push(value);
  }
  return headers;
}

function bytesToText(bytes, charset) {
  try {
    return new TextDecoder(charset || 'utf-8').decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

/** Quoted-printable: soft line breaks (`=` at a line's end) and `=XX` bytes. */
export function decodeQuotedPrintable(text, charset = 'utf-8') {
  const joined = text.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(joined.slice(i + 1, i + 3))) {
      bytes.push(parseInt(joined.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const b of Buffer.from(c, 'utf-8')) bytes.push(b);
    }
  }
  return bytesToText(Uint8Array.from(bytes), charset);
}

/** RFC 2047 encoded words in a header value (=?charset?B|Q?...?=). */
export function decodeHeaderValue(value) {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset, enc, data) => {
      if (enc.toUpperCase() === 'B') return bytesToText(Buffer.from(data, 'base64'), charset);
      return decodeQuotedPrintable(data.replace(/_/g, ' '), charset);
    });
}

function param(headerValue, name) {
  const re = new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i');
  const m = re.exec(headerValue || '');
  return m ? (m[1] ?? m[2]) : undefined;
}

function first(headers, name) {
  return (headers.get(name) || [])[0] || '';
}

/** The leaf parts of a message: [{ type, text }], multiparts flattened. */
function leafParts(headers, body) {
  const contentType = first(headers, 'content-type') || 'text/plain';
  const type = contentType.split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = param(contentType, 'boundary');
    if (!boundary) return [];
    const parts = [];
    const delimiter = `--${boundary}`;
    const chunks = body.split(delimiter).slice(1);
    for (const chunk of chunks) {
      if (chunk.startsWith('--')) break; // the closing delimiter
      const partText = chunk.replace(/^[ \t]*\r?\n/, '').replace(/\r?\n$/, '');
      const [partHead, partBody] = splitHeadBody(partText);
      parts.push(...leafParts(parseHeaders(partHead), partBody));
    }
    return parts;
  }
  const encoding = first(headers, 'content-transfer-encoding').toLowerCase();
  const charset = param(contentType, 'charset');
  let text;
  if (encoding === 'quoted-printable') text = decodeQuotedPrintable(body, charset);
  else if (encoding === 'base64') text = bytesToText(Buffer.from(body.replace(/\s+/g, ''), 'base64'), charset);
  else text = bytesToText(Buffer.from(body, 'latin1'), charset);
  return [{ type, text }];
}

/** Parses one message (a Buffer or a latin1 string of its bytes). */
export function parseMessage(raw) {
  const text = Buffer.isBuffer(raw) ? raw.toString('latin1') : raw;
  const [head, body] = splitHeadBody(text);
  const headers = parseHeaders(head);
  const decoded = (name) => (headers.get(name) || []).map(decodeHeaderValue);
  return {
    subject: decoded('subject').join(' '),
    to: [...decoded('to'), ...decoded('cc')],
    deliveredTo: headers.get('delivered-to') || [],
    parts: leafParts(headers, body),
  };
}

function addressedTo(message, email) {
  const want = email.toLowerCase();
  const all = [...message.deliveredTo, ...message.to].join(' ').toLowerCase();
  return all.includes(want);
}

function htmlUnescape(s) {
  return s.replace(/&amp;/g, '&').replace(/&#0*38;/g, '&').replace(/&#x0*26;/gi, '&');
}

/**
 * The first absolute URL in the message whose text contains `needle`,
 * looking in text/plain parts first, then text/html.
 */
export function findUrl(message, needle) {
  const order = [...message.parts].sort((a, b) => Number(b.type === 'text/plain') - Number(a.type === 'text/plain'));
  for (const part of order) {
    const urls = part.text.match(/https?:\/\/[^\s"'<>()]+/g) || [];
    for (const url of urls) {
      const clean = htmlUnescape(url).replace(/[.,;:!?]+$/, '');
      if (clean.includes(needle)) return clean;
    }
  }
  return undefined;
}

/**
 * Polls `dir` until a message addressed to `to` whose subject contains
 * `subject` arrives, or `timeoutMs` passes. Returns { file, message }.
 */
export async function waitForMail(dir, { to, subject, timeoutMs = 30_000, pollMs = 100 }) {
  const deadline = Date.now() + timeoutMs;
  const seen = [];
  for (;;) {
    const names = (await readdir(dir)).filter((n) => n.endsWith('.eml')).sort();
    seen.length = 0;
    for (const name of names) {
      const raw = await readFile(join(dir, name));
      // Cheap filter first: the address appears in the bytes of its envelope.
      if (!raw.toString('latin1').toLowerCase().includes(to.toLowerCase())) continue;
      const message = parseMessage(raw);
      seen.push(message.subject);
      if (addressedTo(message, to) && message.subject.includes(subject)) {
        return { file: join(dir, name), message };
      }
    }
    if (Date.now() > deadline) {
      const what = seen.length ? `; messages to ${to} had subjects ${JSON.stringify(seen)}` : `; none of the ${names.length} message(s) was addressed to ${to}`;
      throw new Error(`no mail to ${to} with a subject containing ${JSON.stringify(subject)} arrived in ${dir} within ${timeoutMs} ms${what}`);
    }
    await delay(pollMs); // polling interval of a deadline-bounded poll, not a synchronisation sleep
  }
}
