import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { systemContext } from '../access/context.ts';
import { loadPlan } from '../chart/load-plan.ts';
import { type Config, loadConfig } from '../config/config.ts';
import { generateDemoPatients, renderProgress } from '../demo/generate.ts';
import { CustosError } from '../errors.ts';
import { parseBundle } from '../fhir/import.ts';
import { EXIT_OK, type Io, parseOptions, progress, reportError, UsageError } from './output.ts';
import { withCustos } from './session.ts';

const HELP = `custos: patient records with privacy as a property of the core

Usage: custos <command> [options]

Commands:
  serve [--behind-proxy]    serve the clinic's HTTPS API (https://localhost:8443) and seal the audit trail
  user add NAME --role ROLE[,ROLE]
                            create a staff account; prints a one-time enrollment link (24 h), never a password
  user roles NAME --role ROLE[,ROLE], user disable|enable|reset|unlock NAME, user list
                            manage accounts (reset prints a new enrollment link)
  guard blocks [--lift ADDRESS]
                            list blocked client addresses, or lift a block
  review [--json]           disable dormant accounts, then list every account for the access review
  review certify|revoke NAME --by OFFICER [--comment TEXT]
                            record the privacy officer's decision (revoke disables the account)
  codes import FILE         install a complete ICD-10-CM code list (CMS icd10cm_codes_YYYY.txt) for code search
  codes status              which ICD-10-CM list code search uses (bundled starter or imported) and its size
  migrate                   apply pending database migrations and report them
  import FILE               load a FHIR R4 Bundle (JSON) in one transaction; prints counts and new ids as JSON
  export --patient ID       write one patient's records as a FHIR R4 Bundle to stdout
  export --all --user NAME --purpose-code CODE --purpose TEXT --out FILE
                            the privacy officer NAME logs in (password, TOTP code on stdin) and
                            exports every active patient as an encrypted FHIR NDJSON archive;
                            CODE: migration, legal, backup-verification, regulatory; the passphrase
                            from CUSTOS_EXPORT_PASSPHRASE or stdin; never psychotherapy notes; audited
  export --decrypt FILE [--out FILE]
                            open an export archive (passphrase as above) and write its NDJSON
  demo --patients N [--seed S]
                            generate N synthetic patients with clinical histories and load them
  audit verify [--from-checkpoint N] [--anchor CHECKPOINTS.jsonl]
                            recompute every leaf and root, check every checkpoint's chain and signature
  audit seal                seal committed entries into a signed checkpoint now
  audit checkpoints [--since N]
                            print signed checkpoints as JSON lines (keep a copy outside the database)
  audit prove --entry SEQ | --from N --to M
                            RFC 9162 inclusion proof of an entry, or consistency proof between checkpoints
  audit check-proof FILE --public-key PEM
                            verify a proof offline
  audit public-key          print the audit signing public key (PEM)
  audit report --patient ID | --user NAME | --logins | --anomalies
               [--since ISO] [--until ISO] [--json] [--bulk-threshold N]
                            who accessed a patient's record, what a user did, logins, or anomalies
                            (break-glass, out of hours, bulk reads, denials); a table, or JSON lines
                            with --json; times in UTC, --since inclusive, --until exclusive; audited
  audit export --fhir [--since ISO] [--until ISO]
                            write the trail as a FHIR R4 Bundle of AuditEvents to stdout; audited

Environment:
  CUSTOS_DATA_DIR   data folder (default ./data): embedded database, key file, blobs
  DATABASE_URL      use this PostgreSQL database instead of the embedded one
  CUSTOS_KEY_FILE   key file location (default CUSTOS_DATA_DIR/custos.keys)
  CUSTOS_HOST, CUSTOS_PORT           where serve listens (default localhost, 8443)
  CUSTOS_TLS_CERT, CUSTOS_TLS_KEY    certificate and key (PEM); default a self-signed localhost one
  CUSTOS_TRUSTED_PROXIES             proxy addresses trusted for X-Forwarded-For (with --behind-proxy)
  CUSTOS_AUDIT_MIRROR                file receiving every sealed audit entry as a JSON line
  CUSTOS_AUDIT_SYSLOG                udp://host:port or tcp://host:port: syslog collector for sealed entries
  CUSTOS_SMTP_URL                    mail relay smtp://user:pass@host:587 (STARTTLS) or smtps://; unset: outbox
  CUSTOS_MAIL_FROM                   From address of notifications (default Custos <no-reply@localhost>)
  CUSTOS_PORTAL_URL                  patient portal linked from notifications (default https://localhost:8444)
  CUSTOS_SMTP_CA_FILE                PEM certificate of the private CA that signed the relay's certificate
  CUSTOS_EXPORT_PASSPHRASE           passphrase of export archives (else read from standard input)
  CUSTOS_MAX_UPLOAD_BYTES            largest file upload (default 26214400, 25 MiB); larger ones get 413

Exit codes: 0 done, 1 failed, 2 usage or input error (nothing was changed).
`;

type Command = (args: string[], config: Config, io: Io) => Promise<number>;

/** Runs the command line; returns the exit code. The only place that reads `process.argv` is bin/. */
export async function main(argv: string[], io: Io = process, config?: Config): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(HELP);
    return name === undefined ? 2 : EXIT_OK;
  }
  const command = commands[name];
  try {
    if (!command) {
      throw new UsageError(`unknown command '${name}'`);
    }
    // A bad setting (CUSTOS_MAX_UPLOAD_BYTES=lots) is one line naming the variable, exit 2.
    return await command(rest, config ?? loadConfig(), io);
  } catch (e) {
    return reportError(io, e);
  }
}

// Heavy commands load their modules on demand: `custos audit verify` should not pay for the
// HTTPS server, WebAuthn or the embedded database.
const lazy =
  <K extends string>(load: () => Promise<Record<K, Command>>, name: K): Command =>
  async (args, config, io) =>
    (await load())[name](args, config, io);

const commands: Record<string, Command> = {
  audit: lazy(() => import('./audit.ts'), 'audit'),
  codes: lazy(() => import('./codes.ts'), 'codes'),

  serve: lazy(() => import('./serve.ts'), 'serve'),
  user: lazy(() => import('./user.ts'), 'user'),
  guard: lazy(() => import('./user.ts'), 'guard'),
  review: lazy(() => import('./review.ts'), 'review'),
  export: lazy(() => import('./export.ts'), 'exportCommand'),

  async migrate(args, config, io) {
    parseOptions(args, {});
    await withCustos(config, io, async (c) => {
      const applied = c.report.migrationsApplied;
      io.stdout.write(
        applied.length > 0 ? `custos: applied ${applied.join(', ')}\n` : 'custos: schema is up to date\n',
      );
    });
    return EXIT_OK;
  },

  async import(args, config, io) {
    const { positionals } = parseOptions(args, {}, 1);
    const file = positionals[0];
    if (!file) {
      throw new UsageError('import needs a FILE (a FHIR R4 Bundle in JSON)');
    }
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      throw new UsageError(`cannot read ${file}`);
    }
    if (size > config.maxImportBytes) {
      throw new CustosError(
        'CUSTOS_ERR_IMPORT',
        `bundle: ${size} bytes is over the limit of ${config.maxImportBytes} bytes (CUSTOS_MAX_IMPORT_BYTES)`,
      );
    }
    // Parse and validate the whole bundle before the database is even opened: a bad bundle writes nothing.
    const plan = parseBundle(fs.readFileSync(file, 'utf8'), { maxBytes: config.maxImportBytes });
    const loaded = await withCustos(config, io, (c) =>
      loadPlan(
        c.chart,
        systemContext({ practiceId: c.practiceId, purpose: 'import', requestId: randomUUID() }),
        plan.patients,
        {
          detail: plan.counts,
        },
      ),
    );
    io.stdout.write(
      `${JSON.stringify({ counts: plan.counts, patients: loaded.map((p) => ({ fullUrl: p.fullUrl, id: p.id })) })}\n`,
    );
    return EXIT_OK;
  },

  async demo(args, config, io) {
    const { values } = parseOptions(args, { patients: { type: 'string' }, seed: { type: 'string' } });
    const count = Number(values.patients ?? '');
    if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
      throw new UsageError('--patients must be a whole number from 1 to 1000000');
    }
    const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) {
      throw new UsageError('--seed must be a non-negative whole number');
    }
    const bar = progress(io, (d, t) => renderProgress(d, t), count);
    const loaded = await withCustos(config, io, async (c) => {
      const ctx = systemContext({ practiceId: c.practiceId, purpose: 'import', requestId: randomUUID() });
      let batch = [];
      let n = 0;
      const batchSize = 100;
      for (const p of generateDemoPatients({ count, seed })) {
        batch.push(p);
        if (batch.length === batchSize) {
          n += (await loadPlan(c.chart, ctx, batch, { onPatient: () => bar.tick() })).length;
          batch = [];
        }
      }
      if (batch.length > 0) {
        n += (await loadPlan(c.chart, ctx, batch, { onPatient: () => bar.tick() })).length;
      }
      return n;
    });
    bar.end();
    io.stdout.write(`${JSON.stringify({ patients: loaded, seed })}\n`);
    return EXIT_OK;
  },
};
