import path from 'node:path';
import { validationError } from '../errors.ts';

/** Typed configuration. This is the only module that reads `process.env` (CONVENTIONS.md). */
export interface Config {
  /** Folder for the embedded database, the key file (by default) and blobs. */
  readonly dataDir: string;
  /** PostgreSQL connection string; absent selects the embedded database under `dataDir/pg`. */
  readonly databaseUrl: string | undefined;
  /** Path of the key file (key-encryption key, index, link and audit signing keys). */
  readonly keyFile: string;
  /** Largest FHIR bundle `custos import` accepts, in bytes. */
  readonly maxImportBytes: number;
  /** Largest file upload (`CUSTOS_MAX_UPLOAD_BYTES`, default 25 MiB); larger ones get 413. */
  readonly maxUploadBytes: number;
  /** File that receives every sealed audit entry as a JSON line (a copy outside the database). */
  readonly auditMirror: string | undefined;
  /** `udp://host:port` or `tcp://host:port`: a syslog collector receiving every sealed entry. */
  readonly auditSyslog: string | undefined;
  /** Where `custos serve` listens (default localhost:8443). */
  readonly host: string;
  readonly port: number;
  /** Certificate and key (PEM); unset: a self-signed localhost certificate in the data folder. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Proxies whose X-Forwarded-For is trusted (with `--behind-proxy`), comma-separated addresses. */
  readonly trustedProxies: readonly string[];
  /** Mail relay: `smtp://user:pass@relay:587` (STARTTLS required) or `smtps://relay:465`; unset: outbox. */
  readonly smtpUrl: string | undefined;
  /** From address of notifications (default `Custos <no-reply@localhost>`). */
  readonly mailFrom: string;
  /** The patient portal's address, the only link a notification carries (default https://localhost:8444). */
  readonly portalUrl: string;
  /** PEM file of the private CA that signed the mail relay's certificate (replaces the system roots). */
  readonly smtpCaFile: string | undefined;
  /** PEM file of an extra CA trusted for webhook receivers (added to the system roots). */
  readonly webhookCaFile: string | undefined;
  /** Allow webhook receivers on loopback and private addresses (`CUSTOS_WEBHOOK_ALLOW_PRIVATE=1`). */
  readonly webhookAllowPrivate: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Builds the configuration from an environment (defaults give the embedded mode).
 * @example loadConfig({ CUSTOS_DATA_DIR: '/srv/custos' }).keyFile // '/srv/custos/custos.keys'
 */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const dataDir = path.resolve(cwd, env.CUSTOS_DATA_DIR || 'data');
  const databaseUrl = env.DATABASE_URL || undefined;
  const keyFile = path.resolve(cwd, env.CUSTOS_KEY_FILE || path.join(dataDir, 'custos.keys'));
  const maxImportBytes = Number(env.CUSTOS_MAX_IMPORT_BYTES || 50 * 1024 * 1024);
  const maxUploadBytes = Number(env.CUSTOS_MAX_UPLOAD_BYTES || 25 * 1024 * 1024);
  if (!Number.isSafeInteger(maxUploadBytes) || maxUploadBytes < 1) {
    throw validationError('CUSTOS_MAX_UPLOAD_BYTES', 'must be a positive whole number of bytes');
  }
  const auditMirror = env.CUSTOS_AUDIT_MIRROR ? path.resolve(cwd, env.CUSTOS_AUDIT_MIRROR) : undefined;
  return {
    dataDir,
    databaseUrl,
    keyFile,
    maxImportBytes,
    maxUploadBytes,
    auditMirror,
    auditSyslog: env.CUSTOS_AUDIT_SYSLOG || undefined,
    host: env.CUSTOS_HOST || 'localhost',
    port: Number(env.CUSTOS_PORT || 8443),
    tlsCert: env.CUSTOS_TLS_CERT || undefined,
    tlsKey: env.CUSTOS_TLS_KEY || undefined,
    trustedProxies: (env.CUSTOS_TRUSTED_PROXIES || '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    smtpUrl: env.CUSTOS_SMTP_URL || undefined,
    mailFrom: env.CUSTOS_MAIL_FROM || 'Custos <no-reply@localhost>',
    portalUrl: env.CUSTOS_PORTAL_URL || 'https://localhost:8444',
    smtpCaFile: env.CUSTOS_SMTP_CA_FILE ? path.resolve(cwd, env.CUSTOS_SMTP_CA_FILE) : undefined,
    webhookCaFile: env.CUSTOS_WEBHOOK_CA_FILE ? path.resolve(cwd, env.CUSTOS_WEBHOOK_CA_FILE) : undefined,
    webhookAllowPrivate:
      env.CUSTOS_WEBHOOK_ALLOW_PRIVATE === '1' || env.CUSTOS_WEBHOOK_ALLOW_PRIVATE === 'true',
  };
}

/** Connection string of the PostgreSQL server the integration tests use (never a production one). */
export function testDatabaseUrl(env: Env = process.env): string | undefined {
  return env.CUSTOS_TEST_DATABASE_URL || undefined;
}

/**
 * The bulk-export passphrase from `CUSTOS_EXPORT_PASSPHRASE`, read at the moment a command needs
 * it and never kept in {@link Config} (a long-lived object must not hold a secret).
 */
export const exportPassphrase = (env: Env = process.env): string | undefined =>
  env.CUSTOS_EXPORT_PASSPHRASE || undefined;

/** Whether standard error is a terminal (for progress bars). */
export const isInteractive = (): boolean => Boolean(process.stderr.isTTY) && !process.env.CI;
