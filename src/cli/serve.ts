import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { systemContext } from '../access/context.ts';
import { startDormantSweep } from '../access/reviews.ts';
import { openCustos } from '../app/custos.ts';
import { SealerService } from '../audit/sealer.ts';
import { configuredMirror } from '../audit/syslog.ts';
import { CodeList } from '../codes/icd10.ts';
import type { Config } from '../config/config.ts';
import { buildServer } from '../http/server.ts';
import { buildServices } from '../http/services.ts';
import { loadOrCreateCertificate } from '../http/tls.ts';
import { createMailer } from '../notify/mailer.ts';
import { startReminders } from '../scheduling/reminders.ts';
import { EXIT_OK, type Io, parseOptions, UsageError } from './output.ts';

/**
 * `custos serve`: the clinic's HTTPS server with the audit sealer running beside it. Stops
 * cleanly on SIGINT/SIGTERM (sealer, server, database, lock file).
 */
export async function serve(args: string[], config: Config, io: Io): Promise<number> {
  const { values } = parseOptions(args, { 'behind-proxy': { type: 'boolean' } });
  if (values['behind-proxy'] && config.trustedProxies.length === 0) {
    throw new UsageError(
      '--behind-proxy needs CUSTOS_TRUSTED_PROXIES (the proxy addresses whose X-Forwarded-For to trust)',
    );
  }
  const custos = await openCustos(config);
  const r = custos.report;
  io.stdout.write(
    `custos: ${r.fresh ? 'initialized' : 'opened'} the ${config.databaseUrl ? 'PostgreSQL database (DATABASE_URL)' : `embedded database in ${config.dataDir}/pg`}\n`,
  );
  if (r.keyFileCreated) {
    io.stdout.write(
      `custos: created the key file ${config.keyFile} (mode 0600): back it up apart from the data; without it the data cannot be read\n`,
    );
  }
  if (r.migrationsApplied.length > 0) {
    io.stdout.write(`custos: applied migrations ${r.migrationsApplied.join(', ')}\n`);
  }
  const tls = await loadOrCreateCertificate({
    dataDir: config.dataDir,
    ...(config.tlsCert ? { certFile: config.tlsCert } : {}),
    ...(config.tlsKey ? { keyFile: config.tlsKey } : {}),
  });
  if (tls.created) {
    io.stdout.write(
      `custos: created a self-signed certificate for localhost in ${config.dataDir}/tls (set CUSTOS_TLS_CERT/CUSTOS_TLS_KEY for a real one)\n`,
    );
  }
  const log = (line: string) => io.stdout.write(`${new Date().toISOString()} ${line}\n`);
  // One mailer for every notification ("you have a new message", appointment reminders): the
  // relay over TLS, or the outbox under the data folder.
  const mailer = createMailer(config);
  const services = buildServices(custos, {
    mail: { mailer, portalUrl: config.portalUrl, log },
    webhooks: {
      ...(config.webhookCaFile ? { ca: fs.readFileSync(config.webhookCaFile, 'utf8') } : {}),
      allowPrivateAddresses: config.webhookAllowPrivate,
      log,
    },
    codes: CodeList.load(config.dataDir),
    passkeys: { rpId: config.host, origins: [`https://${config.host}:${config.port}`] },
  });
  // The first start of a practice has no accounts: create the first administrator and print a
  // one-time enrollment link (with the embedded database, no other process may open it meanwhile).
  const users = await custos.database.db
    .selectFrom('users')
    .select('id')
    .where('practice_id', '=', custos.practiceId)
    .limit(1)
    .execute();
  if (users.length === 0) {
    const first = await services.accounts.add(
      systemContext({ practiceId: custos.practiceId, purpose: 'operations', requestId: randomUUID() }),
      {
        username: 'admin',
        roles: ['admin'],
      },
    );
    io.stdout.write(
      `custos: created the first administrator account 'admin'; enroll it with this one-time link (valid until ${first.expiresAt.toISOString()}):\n  https://${config.host}:${config.port}/enroll#${first.token}\n`,
    );
  }
  const app = await buildServer(services, {
    tls,
    uploadLimit: config.maxUploadBytes,
    ...(values['behind-proxy'] ? { trustedProxies: config.trustedProxies } : {}),
    log: (line) => io.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  const mirror = configuredMirror(config);
  const sealer = new SealerService({
    db: custos.database.db,
    keyring: custos.keyring,
    engine: custos.database.engine,
    ...(mirror.mirror ? { mirror: mirror.mirror } : {}),
  });
  await app.listen({ host: config.host, port: config.port });
  sealer.start();
  // Webhook deliveries: the queue is durable, so this continues whatever a previous run left due.
  services.webhooks.start();
  const sweep = startDormantSweep({
    reviews: services.reviews,
    context: () =>
      systemContext({ practiceId: custos.practiceId, purpose: 'operations', requestId: randomUUID() }),
    clock: services.clock,
    log: (line) => io.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  // Appointment reminders every 5 minutes.
  const reminders = startReminders({
    chart: custos.chart,
    db: custos.database.db,
    practiceId: custos.practiceId,
    mailer,
    portalUrl: config.portalUrl,
    clock: services.clock,
    log: (line) => io.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  io.stdout.write(`custos: serving https://${config.host}:${config.port} (API docs at /api/docs)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  io.stdout.write('custos: stopping\n');
  await sweep.stop();
  await reminders.stop();
  await services.webhooks.stop();
  await sealer.stop();
  await mirror.close();
  await app.close();
  await services.notices.drain();
  mailer.close();
  await custos.close();
  return EXIT_OK;
}
