import fs from 'node:fs';
import path from 'node:path';
import type { SendMailOptions } from 'nodemailer';
import nodemailer from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import type { Config } from '../config/config.ts';
import { CustosError, validationError } from '../errors.ts';
import { CONTROL, type Notification, notificationContent } from './messages.ts';
import { writeOutboxMessage } from './outbox.ts';

/**
 * Sends notifications: through the configured SMTP relay, always over TLS (HIPAA 45 CFR
 * 164.312(e)(1), transmission security), or, with no relay configured, into the outbox folder.
 *
 * What it sends is only what `messages.ts` builds (the minimum necessary); `send` refuses
 * anything else. Nothing here logs, and neither the result nor an error carries the recipient's
 * address or the message: the caller knows both already, and logs must not (DESIGN.md invariant 5).
 */

/** A notification addressed to one patient. Build it as `{ to, ...appointmentReminder(…) }`. */
export interface OutgoingMail extends Notification {
  /** One address (`local@domain`), no display name. */
  readonly to: string;
}

export interface SendResult {
  /** The Message-ID header of the message sent. */
  readonly messageId: string;
  readonly via: 'smtp' | 'outbox';
}

export interface Mailer {
  /** Where messages go: the relay, or the outbox folder. */
  readonly via: 'smtp' | 'outbox';
  /** Sends one message; rejects with `MailDeliveryError` when the relay fails or refuses TLS. */
  send(mail: OutgoingMail): Promise<SendResult>;
  /** Closes relay connections. */
  close(): void;
}

export type MailerConfig = Pick<Config, 'dataDir' | 'smtpUrl' | 'smtpCaFile' | 'mailFrom'>;

/** Why a message was not delivered: TLS, credentials, network, refused by the relay, or other. */
export type DeliveryFailure = 'tls' | 'auth' | 'unreachable' | 'rejected' | 'failed';

/** A message the relay did not take. The message says why without any address or content. */
export class MailDeliveryError extends CustosError {
  readonly reason: DeliveryFailure;
  /** Whether trying again later may work (network trouble, a 4xx reply). */
  readonly transient: boolean;

  constructor(reason: DeliveryFailure, message: string, transient: boolean) {
    // No `cause`: nodemailer's errors quote the relay's replies, which may name the recipient.
    super('CUSTOS_ERR_CONFIG', message);
    this.name = 'MailDeliveryError';
    this.reason = reason;
    this.transient = transient;
  }
}

/**
 * The mailer for this configuration: SMTP when `CUSTOS_SMTP_URL` is set, otherwise the outbox
 * (`outboxDir`, default `<dataDir>/outbox`).
 * @example
 * const mailer = createMailer(config);
 * await mailer.send({ to: 'patient@example.org', ...newMessageNotice({ practiceName, portalUrl }) });
 */
export function createMailer(config: MailerConfig, options: { readonly outboxDir?: string } = {}): Mailer {
  const from = parseFrom(config.mailFrom);
  if (config.smtpUrl) {
    return smtpMailer(parseRelay(config.smtpUrl, config.smtpCaFile), from);
  }
  return outboxMailer(options.outboxDir ?? path.join(config.dataDir, 'outbox'), from);
}

interface Relay {
  readonly host: string;
  readonly port: number;
  /** smtps: TLS from the first byte; smtp: STARTTLS, required. */
  readonly secure: boolean;
  readonly auth: { readonly user: string; readonly pass: string } | undefined;
  readonly ca: string | undefined;
}

function smtpMailer(relay: Relay, from: Address): Mailer {
  const transport = nodemailer.createTransport({
    host: relay.host,
    port: relay.port,
    secure: relay.secure,
    // STARTTLS is mandatory: nodemailer issues it even when the relay does not advertise it
    // and fails the message when the upgrade fails, before AUTH or any mail data is sent. The
    // rejected alternative, opportunistic TLS, falls back to plaintext when an attacker strips
    // the STARTTLS capability from the greeting.
    requireTLS: true,
    ignoreTLS: false,
    opportunisticTLS: false,
    tls: {
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ...(relay.ca === undefined ? {} : { ca: relay.ca }),
    },
    ...(relay.auth === undefined ? {} : { auth: { user: relay.auth.user, pass: relay.auth.pass } }),
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
    logger: false,
    debug: false,
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    via: 'smtp',
    async send(mail) {
      const message = compose(mail, from);
      try {
        const info = await transport.sendMail(message);
        return { messageId: info.messageId, via: 'smtp' };
      } catch (e) {
        throw deliveryError(e);
      }
    },
    close() {
      transport.close();
    },
  };
}

function outboxMailer(dir: string, from: Address): Mailer {
  // The same MIME composer as the SMTP path, so the outbox shows exactly what a relay would get.
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  return {
    via: 'outbox',
    async send(mail) {
      const info = await transport.sendMail(compose(mail, from));
      if (!Buffer.isBuffer(info.message)) {
        throw new CustosError('CUSTOS_ERR_INTEGRITY', 'mail composer did not return a buffer');
      }
      await writeOutboxMessage(dir, info.message);
      return { messageId: info.messageId, via: 'outbox' };
    },
    close() {
      transport.close();
    },
  };
}

const MAIL_KEYS: readonly string[] = ['to', 'subject', 'text', 'html', 'ics'];

/** The nodemailer message for a notification; refuses anything the builders did not make. */
function compose(mail: OutgoingMail, from: Address): SendMailOptions {
  const content = notificationContent(mail);
  if (content === undefined) {
    throw validationError('mail', 'must be built by appointmentReminder or newMessageNotice, unchanged');
  }
  for (const key of Object.keys(mail)) {
    if (!MAIL_KEYS.includes(key)) {
      throw validationError('mail', 'has a field that a notification may not carry');
    }
  }
  const to = checkAddress(mail.to, 'to');
  if (CONTROL.test(content.subject)) {
    throw validationError('subject', 'must not contain line breaks or control characters');
  }
  return {
    from,
    to,
    subject: content.subject,
    text: content.text,
    html: content.html,
    attachments:
      content.ics === undefined
        ? []
        : [
            {
              filename: 'appointment.ics',
              content: content.ics,
              contentType: 'text/calendar; charset=utf-8',
              contentDisposition: 'attachment',
            },
          ],
    // RFC 3834: an automatic message; auto-responders should not answer it.
    headers: { 'Auto-Submitted': 'auto-generated' },
    xMailer: false,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

// A plain addr-spec: dot-atom local part, host name labels. No display name, no comments, no
// quoted local parts, no lists: one recipient per message.
const ADDRESS =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function checkAddress(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length > 254 || !ADDRESS.test(value)) {
    // Never quote the value: it is a patient's address.
    throw validationError(field, 'must be one e-mail address (local@domain)');
  }
  return value;
}

interface Address {
  readonly name: string;
  readonly address: string;
}

function parseFrom(value: string): Address {
  if (CONTROL.test(value)) {
    throw new CustosError('CUSTOS_ERR_CONFIG', 'CUSTOS_MAIL_FROM: must not contain line breaks');
  }
  const parsed = addressparser(value, { flatten: true });
  const first = parsed[0];
  if (parsed.length !== 1 || !first || first.address === undefined || !ADDRESS.test(first.address)) {
    throw new CustosError(
      'CUSTOS_ERR_CONFIG',
      'CUSTOS_MAIL_FROM: must be one address, e.g. Clinic <no-reply@example.org>',
    );
  }
  return { name: first.name, address: first.address };
}

/** `smtp://user:pass@host:587` or `smtps://user:pass@host:465`. Errors never quote the URL (it has the password). */
function parseRelay(value: string, caFile: string | undefined): Relay {
  const bad = (problem: string) => new CustosError('CUSTOS_ERR_CONFIG', `CUSTOS_SMTP_URL: ${problem}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw bad('the scheme must be smtp: (STARTTLS, required) or smtps: (TLS from the start)');
  }
  if (url.hostname === '') {
    throw bad('names no host');
  }
  if (url.search !== '' || url.hash !== '' || (url.pathname !== '' && url.pathname !== '/')) {
    // nodemailer reads options such as ignoreTLS from the query string; we take none.
    throw bad('takes no path or options (TLS is always required)');
  }
  const secure = url.protocol === 'smtps:';
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = fs.readFileSync(caFile, 'utf8');
    } catch {
      throw new CustosError('CUSTOS_ERR_CONFIG', 'CUSTOS_SMTP_CA_FILE: cannot read the file');
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new CustosError('CUSTOS_ERR_CONFIG', 'CUSTOS_SMTP_CA_FILE: not a PEM certificate');
    }
  }
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
    secure,
    auth: user === '' ? undefined : { user, pass },
    ca,
  };
}

/** Maps nodemailer's error to a fixed, address-free message. */
function deliveryError(e: unknown): MailDeliveryError {
  const err = (typeof e === 'object' && e !== null ? e : {}) as {
    code?: unknown;
    command?: unknown;
    responseCode?: unknown;
    message?: unknown;
  };
  const code = typeof err.code === 'string' ? err.code : '';
  const message = typeof err.message === 'string' ? err.message : '';
  const responseCode = typeof err.responseCode === 'number' ? err.responseCode : undefined;
  const transient = responseCode !== undefined && responseCode >= 400 && responseCode < 500;
  const tlsDetail = /initiating TLS - (.*)$/s.exec(message)?.[1] ?? message;
  const looksTls = /certificate|self[- ]signed|altname|\bTLS\b|\bSSL\b|handshake|protocol version/i;
  if (code === 'ETLS' && err.command === 'STARTTLS' && !message.includes('initiating TLS')) {
    return new MailDeliveryError(
      'tls',
      'the mail relay does not offer STARTTLS; refusing to send without TLS (nothing was sent)',
      false,
    );
  }
  // Only socket-level errors are searched for TLS words: a refused recipient's error quotes the
  // relay's reply, which may name the address.
  const socketLevel = code === 'ESOCKET' || code === 'ECONNECTION' || code === '';
  if (code === 'ETLS' || (socketLevel && looksTls.test(message))) {
    return new MailDeliveryError(
      'tls',
      `TLS to the mail relay failed: ${printable(tlsDetail)} (nothing was sent; a private CA goes in CUSTOS_SMTP_CA_FILE)`,
      false,
    );
  }
  switch (code) {
    case 'EAUTH':
    case 'ENOAUTH':
      return new MailDeliveryError(
        'auth',
        'the mail relay refused the credentials in CUSTOS_SMTP_URL',
        false,
      );
    case 'ECONNECTION':
    case 'ETIMEDOUT':
    case 'ESOCKET':
    case 'EDNS':
    case 'ECONNREFUSED':
      return new MailDeliveryError('unreachable', `the mail relay could not be reached (${code})`, true);
    case 'EENVELOPE':
    case 'EMESSAGE':
      return new MailDeliveryError(
        'rejected',
        `the mail relay refused the message${responseCode ? ` (reply ${responseCode})` : ''}`,
        transient,
      );
    default:
      return new MailDeliveryError(
        'failed',
        `sending through the mail relay failed (${code || 'unknown'})`,
        transient,
      );
  }
}

/** One line, printable ASCII, at most 200 characters: TLS error text names hosts and certificates only. */
const printable = (s: string): string =>
  s
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim()
    .slice(0, 200);
