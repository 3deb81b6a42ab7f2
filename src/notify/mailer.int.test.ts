import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generate } from 'selfsigned';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Env, loadConfig } from '../config/config.ts';
import { isCustosError } from '../errors.ts';
import { parseMessage } from './eml.ts';
import { createMailer, MailDeliveryError, type OutgoingMail } from './mailer.ts';
import { appointmentReminder, newMessageNotice } from './messages.ts';
import { readOutbox } from './outbox.ts';

// Clinical content the scheduling module holds about an appointment. A notification must
// never carry any of it: the scan below looks for these in everything the mailer produced.
const tag = Math.random().toString(36).slice(2, 10).toUpperCase();
const MARKERS = {
  reason: `MARKER-REASON-${tag}`,
  clinicianSpecialty: `MARKER-SPECIALTY-${tag}`,
  clinicianName: `MARKER-CLINICIAN-${tag}`,
  diagnosis: `MARKER-DIAGNOSIS-${tag}`,
  notes: `MARKER-NOTE-${tag}`,
  patientName: `MARKER-PATIENT-${tag}`,
};
const CLINICAL = Object.values(MARKERS);
// Positive control: this one is in the practice's name, so it must be found (through the
// encodings a MIME message uses), or the scan proves nothing.
const CONTROL = `MARKER-PRACTICE-${tag}`;

/** The appointment as the scheduling module would hold it: much more than a notification may say. */
const appointment = {
  id: 'apt-4c1d2e9b',
  practiceName: `Praktijk Ærø ${CONTROL}`,
  startsAt: new Date('2026-10-25T01:30:00Z'),
  endsAt: new Date('2026-10-25T02:15:00Z'),
  timeZone: 'Europe/Amsterdam',
  ...MARKERS,
};
const patientAddress = 'patient.4c1d@example.org';

const reminderFor = (a: typeof appointment, portalUrl: string) =>
  appointmentReminder({
    practiceName: a.practiceName,
    startsAt: a.startsAt,
    endsAt: a.endsAt,
    timeZone: a.timeZone,
    portalUrl,
    appointmentRef: a.id,
  });

/** Every string in `texts` that contains one of `needles`. */
const hits = (texts: readonly (string | undefined)[], needles: readonly string[]) =>
  texts.filter((t): t is string => t !== undefined && needles.some((n) => t.includes(n)));

/** The raw message and every decoded piece of it (headers, text, html, attachments). */
function piecesOf(raw: string): string[] {
  const m = parseMessage(raw);
  return [
    raw,
    ...m.headers.values(),
    m.text,
    m.html,
    ...m.attachments.map((a) => a.content.toString('utf8')),
  ].filter((s): s is string => s !== undefined);
}

let tmp: string;
let pems: { cert: string; private: string };
let caFile: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-notify-'));
  pems = await generate([{ name: 'commonName', value: 'relay.test' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  });
  caFile = path.join(tmp, 'relay-ca.pem');
  fs.writeFileSync(caFile, pems.cert);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('outbox mode (no relay configured)', () => {
  let dataDir: string;
  let outbox: string;
  const env = (): Env => ({
    CUSTOS_DATA_DIR: dataDir,
    CUSTOS_MAIL_FROM: 'Praktijk Zuid <no-reply@zuid.example>',
  });

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(tmp, 'data-'));
    outbox = path.join(dataDir, 'outbox');
  });

  it('writes each message as an .eml file, 0600 in a 0700 folder, and reads it back', async () => {
    const config = loadConfig(env());
    const mailer = createMailer(config);
    expect(mailer.via).toBe('outbox');
    const reminder = reminderFor(appointment, config.portalUrl);
    const result = await mailer.send({ to: patientAddress, ...reminder });
    mailer.close();

    expect(Object.keys(result).sort()).toEqual(['messageId', 'via']);
    expect(result.via).toBe('outbox');
    expect(fs.statSync(outbox).mode & 0o777).toBe(0o700);
    const names = fs.readdirSync(outbox);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{16}\.eml$/);
    expect(fs.statSync(path.join(outbox, names[0]!)).mode & 0o777).toBe(0o600);

    const [mail] = await readOutbox(outbox);
    expect(mail).toBeDefined();
    expect(mail!.messageId).toBe(result.messageId);
    expect(mail!.to).toBe(patientAddress);
    expect(mail!.from).toBe('Praktijk Zuid <no-reply@zuid.example>');
    expect(mail!.subject).toBe(reminder.subject);
    expect(mail!.subject).toBe(
      `Reminder: your appointment at Praktijk Ærø ${CONTROL} on Sunday, 25 October 2026 at 02:30`,
    );
    expect(mail!.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail!.text?.replace(/\r\n/g, '\n')).toBe(reminder.text);
    expect(mail!.html?.replace(/\r\n/g, '\n')).toBe(reminder.html);
    expect(mail!.raw).toMatch(/\r\n\r\n/);
    expect(mail!.raw.replace(/\r\n/g, '')).not.toMatch(/\n/);

    expect(mail!.attachments).toHaveLength(1);
    const ics = mail!.attachments[0]!;
    expect(ics.filename).toBe('appointment.ics');
    expect(ics.contentType).toMatch(/^text\/calendar; charset=utf-8/);
    expect(ics.content.toString('utf8')).toBe(reminder.ics);
    expect(reminder.ics).toContain('\r\nDTSTART:20261025T013000Z\r\nDTEND:20261025T021500Z\r\n');
  });

  it('puts none of the clinical markers anywhere in the outbox (zero hits)', async () => {
    const config = loadConfig(env());
    const mailer = createMailer(config);
    const results = [
      await mailer.send({ to: patientAddress, ...reminderFor(appointment, config.portalUrl) }),
      await mailer.send({
        to: patientAddress,
        ...newMessageNotice({ practiceName: appointment.practiceName, portalUrl: config.portalUrl }),
      }),
    ];
    mailer.close();

    const texts: string[] = [JSON.stringify(results), ...fs.readdirSync(outbox)];
    for (const name of fs.readdirSync(outbox)) {
      texts.push(...piecesOf(fs.readFileSync(path.join(outbox, name), 'utf8')));
    }
    expect(fs.readdirSync(outbox)).toHaveLength(2);
    expect(hits(texts, CLINICAL)).toEqual([]);
    // The scan does see through the encodings: the practice's marker is found in the decoded
    // subject, text, html and calendar of both messages, although the raw files hold the
    // non-ASCII name only in encoded form.
    expect(hits(texts, [CONTROL]).length).toBeGreaterThanOrEqual(8);
    const raw = fs.readdirSync(outbox).map((n) => fs.readFileSync(path.join(outbox, n), 'utf8'));
    expect(raw.some((r) => r.includes('Ærø'))).toBe(false);
    // The result tells the caller nothing about the recipient or the content.
    expect(JSON.stringify(results)).not.toContain(patientAddress);
  });

  it('refuses what the builders did not make, and addresses that are not one plain address', async () => {
    const config = loadConfig(env());
    const mailer = createMailer(config);
    const notice = newMessageNotice({ practiceName: 'Praktijk Zuid', portalUrl: config.portalUrl });
    const forged = {
      to: patientAddress,
      subject: 'Your results',
      text: MARKERS.diagnosis,
      html: '',
    } as unknown as OutgoingMail;
    await expect(mailer.send(forged)).rejects.toSatisfy((e) => isCustosError(e, 'CUSTOS_ERR_VALIDATION'));
    await expect(mailer.send({ to: patientAddress, ...notice, text: MARKERS.notes })).rejects.toSatisfy((e) =>
      isCustosError(e, 'CUSTOS_ERR_VALIDATION'),
    );
    const extra = { to: patientAddress, ...notice, cc: 'clinician@example.org' } as OutgoingMail;
    await expect(mailer.send(extra)).rejects.toSatisfy((e) => isCustosError(e, 'CUSTOS_ERR_VALIDATION'));
    for (const to of [
      `${patientAddress}\r\nBcc: all@example.org`,
      `${patientAddress}, other@example.org`,
      `Patient <${patientAddress}>`,
      'not-an-address',
    ]) {
      const error = await mailer.send({ to, ...notice }).catch((e: unknown) => e);
      expect(isCustosError(error, 'CUSTOS_ERR_VALIDATION')).toBe(true);
      expect(String((error as Error).message)).not.toContain('example.org');
      expect(String((error as Error).message)).not.toContain('not-an-address');
    }
    mailer.close();
    expect(fs.existsSync(outbox) ? fs.readdirSync(outbox) : []).toEqual([]);
  });

  it('refuses a From address with a line break or more than one address', () => {
    for (const from of ['a@example.org\r\nBcc: x@example.org', 'a@example.org, b@example.org']) {
      expect(() => createMailer(loadConfig({ ...env(), CUSTOS_MAIL_FROM: from }))).toThrow(
        /CUSTOS_MAIL_FROM/,
      );
    }
  });
});

interface Delivered {
  readonly raw: string;
  readonly secure: boolean;
  readonly rcptTo: readonly string[];
}

/** A relay on 127.0.0.1 with the test certificate; records what it received and any login. */
async function startRelay(options: SMTPServerOptions = {}) {
  const delivered: Delivered[] = [];
  const logins: { user: string | undefined; secure: boolean }[] = [];
  const server = new SMTPServer({
    key: pems.private,
    cert: pems.cert,
    logger: false,
    authOptional: true,
    onAuth(auth, session, callback) {
      logins.push({ user: auth.username, secure: session.secure });
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        delivered.push({
          raw: Buffer.concat(chunks).toString('utf8'),
          secure: session.secure,
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
        });
        callback();
      });
    },
    ...options,
  });
  server.on('error', () => {
    // Failed handshakes (an untrusting client) surface here; the test asserts on the client side.
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    delivered,
    logins,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('SMTP mode (relay configured): TLS or nothing', () => {
  const send = async (env: Env) => {
    const config = loadConfig({ CUSTOS_DATA_DIR: path.join(tmp, 'unused'), ...env });
    const mailer = createMailer(config);
    expect(mailer.via).toBe('smtp');
    try {
      return await mailer.send({ to: patientAddress, ...reminderFor(appointment, config.portalUrl) });
    } finally {
      mailer.close();
    }
  };

  it('delivers over STARTTLS, logs in only after TLS, and the message carries no clinical marker', async () => {
    const relay = await startRelay();
    try {
      const result = await send({
        CUSTOS_SMTP_URL: `smtp://clinic:s3cret%21@127.0.0.1:${relay.port}`,
        CUSTOS_SMTP_CA_FILE: caFile,
      });
      expect(result.via).toBe('smtp');
      expect(relay.logins).toEqual([{ user: 'clinic', secure: true }]);
      expect(relay.delivered).toHaveLength(1);
      const [d] = relay.delivered;
      expect(d!.secure).toBe(true);
      expect(d!.rcptTo).toEqual([patientAddress]);
      const m = parseMessage(d!.raw);
      expect(m.headers.get('message-id')).toBe(result.messageId);
      expect(m.headers.get('subject')).toBe(
        `Reminder: your appointment at Praktijk Ærø ${CONTROL} on Sunday, 25 October 2026 at 02:30`,
      );
      expect(m.text).toContain('Sign in to the patient portal for details:\r\nhttps://localhost:8444/');
      expect(m.attachments.map((a) => a.filename)).toEqual(['appointment.ics']);
      expect(m.attachments[0]!.content.toString('utf8')).toContain('SUMMARY:Appointment at Praktijk Ærø');
      expect(hits(piecesOf(d!.raw), CLINICAL)).toEqual([]);
      expect(hits(piecesOf(d!.raw), [CONTROL]).length).toBeGreaterThan(0);
    } finally {
      await relay.close();
    }
  });

  it('still insists on STARTTLS when the relay does not advertise it but accepts it', async () => {
    const relay = await startRelay({ hideSTARTTLS: true });
    try {
      await send({ CUSTOS_SMTP_URL: `smtp://127.0.0.1:${relay.port}`, CUSTOS_SMTP_CA_FILE: caFile });
      expect(relay.delivered.map((d) => d.secure)).toEqual([true]);
    } finally {
      await relay.close();
    }
  });

  it('refuses to send when the relay offers no STARTTLS, before any login or mail', async () => {
    const relay = await startRelay({
      hideSTARTTLS: true,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
    });
    try {
      const error = await send({
        CUSTOS_SMTP_URL: `smtp://clinic:secret@127.0.0.1:${relay.port}`,
        CUSTOS_SMTP_CA_FILE: caFile,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MailDeliveryError);
      expect((error as MailDeliveryError).reason).toBe('tls');
      expect((error as Error).message).toMatch(/does not offer STARTTLS; refusing to send without TLS/);
      expect(relay.logins).toEqual([]);
      expect(relay.delivered).toEqual([]);
    } finally {
      await relay.close();
    }
  });

  it('refuses a relay whose certificate it does not trust (STARTTLS and implicit TLS)', async () => {
    const starttls = await startRelay();
    const implicit = await startRelay({ secure: true });
    try {
      for (const url of [`smtp://127.0.0.1:${starttls.port}`, `smtps://127.0.0.1:${implicit.port}`]) {
        const error = await send({ CUSTOS_SMTP_URL: url }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MailDeliveryError);
        expect((error as MailDeliveryError).reason).toBe('tls');
        expect((error as Error).message).toMatch(/^TLS to the mail relay failed: .*certificate/);
      }
      expect(starttls.delivered).toEqual([]);
      expect(implicit.delivered).toEqual([]);
    } finally {
      await starttls.close();
      await implicit.close();
    }
  });

  it('delivers over implicit TLS with smtps:', async () => {
    const relay = await startRelay({ secure: true });
    try {
      const result = await send({
        CUSTOS_SMTP_URL: `smtps://127.0.0.1:${relay.port}`,
        CUSTOS_SMTP_CA_FILE: caFile,
      });
      expect(result.via).toBe('smtp');
      expect(relay.delivered.map((d) => d.secure)).toEqual([true]);
    } finally {
      await relay.close();
    }
  });

  it('reports a refused recipient without quoting the address', async () => {
    const relay = await startRelay({
      onRcptTo(address, _session, callback) {
        callback(new Error(`5.1.1 <${address.address}>: mailbox unavailable`));
      },
    });
    try {
      const error = await send({
        CUSTOS_SMTP_URL: `smtp://127.0.0.1:${relay.port}`,
        CUSTOS_SMTP_CA_FILE: caFile,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MailDeliveryError);
      expect((error as MailDeliveryError).reason).toBe('rejected');
      expect((error as Error).message).not.toContain('example.org');
      expect((error as Error).cause).toBeUndefined();
      expect(relay.delivered).toEqual([]);
    } finally {
      await relay.close();
    }
  });

  it('rejects a relay URL that is not smtp: or smtps:, or asks for options, without quoting it', () => {
    for (const url of [
      'http://user:hunter2@relay.example:587',
      'smtp://user:hunter2@relay.example:587?ignoreTLS=true',
      'not a url hunter2',
    ]) {
      const config = loadConfig({ CUSTOS_SMTP_URL: url });
      let error: unknown;
      try {
        createMailer(config);
      } catch (e) {
        error = e;
      }
      expect(isCustosError(error, 'CUSTOS_ERR_CONFIG')).toBe(true);
      expect((error as Error).message).toMatch(/^CUSTOS_SMTP_URL: /);
      expect((error as Error).message).not.toContain('hunter2');
    }
  });
});
