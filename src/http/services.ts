import { BreakGlassReviews } from '../access/break-glass.ts';
import { AccessReviews } from '../access/reviews.ts';
import type { Custos } from '../app/custos.ts';
import { CodeList } from '../codes/icd10.ts';
import { Blocks } from '../guard/blocks.ts';
import { Accounts } from '../identity/accounts.ts';
import { DEFAULT_POLICY, type IdentityPolicy } from '../identity/config.ts';
import { Login } from '../identity/login.ts';
import { Passkeys } from '../identity/passkeys.ts';
import { PasswordHasher } from '../identity/password.ts';
import { PracticeSettings } from '../identity/practice-settings.ts';
import { Sessions } from '../identity/sessions.ts';
import { Integrations } from '../integrations/integrations.ts';
import { type WebhookOptions, Webhooks } from '../integrations/webhooks.ts';
import type { Mailer } from '../notify/mailer.ts';
import { MessageNotices } from '../notify/message-notices.ts';
import { AppointmentEvents } from '../scheduling/events.ts';

/** Everything the HTTP layer calls, built once per server. */
export interface Services {
  readonly custos: Custos;
  readonly clock: () => Date;
  readonly policy: IdentityPolicy;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly settings: PracticeSettings;
  readonly blocks: Blocks;
  readonly accounts: Accounts;
  readonly login: Login;
  readonly passkeys: Passkeys;
  readonly reviews: AccessReviews;
  readonly breakGlass: BreakGlassReviews;
  /** Committed appointment changes (book, reschedule, cancel, no-show) for listeners such as webhooks. */
  readonly appointmentEvents: AppointmentEvents;
  /** Third-party receivers of appointment webhooks (admin configuration). */
  readonly integrations: Integrations;
  /** The webhook dispatcher: queue, signed delivery with retries, disclosures (`custos serve` runs its loop). */
  readonly webhooks: Webhooks;
  /** The ICD-10-CM list code search uses (imported under the data folder, or the bundled starter list). */
  readonly codes: CodeList;
  /** "You have a new message" e-mails to patients after staff post (src/notify/message-notices.ts). */
  readonly notices: MessageNotices;
}

export function buildServices(
  custos: Custos,
  options: {
    clock?: () => Date;
    policy?: Partial<IdentityPolicy>;
    hasher?: PasswordHasher;
    /** WebAuthn relying party: id (default `localhost`) and the page origins (default `https://localhost:8443`). */
    passkeys?: { rpId?: string; origins?: readonly string[] };
    /** Default: the bundled starter list. `custos serve` passes the data folder's list. */
    codes?: CodeList;
    /**
     * Where patient notices go (`createMailer(config)`: the relay or the outbox) and the portal link
     * they carry. Without it no notice is sent. `log` gets one line per notice not sent (no address, no content).
     */
    mail?: { mailer: Mailer; portalUrl: string; log?: (line: string) => void };
    /**
     * Webhook receivers: extra trusted CA (PEM), private/loopback receivers allowed (tests,
     * on-premises), attempt deadline and retry schedule. Default: public HTTPS receivers only.
     */
    webhooks?: Partial<
      Pick<WebhookOptions, 'ca' | 'timeoutMs' | 'scheduleMs' | 'jitter' | 'random' | 'log'> & {
        allowPrivateAddresses: boolean;
      }
    >;
  } = {},
): Services {
  const clock = options.clock ?? (() => new Date());
  const policy: IdentityPolicy = { ...DEFAULT_POLICY, ...options.policy };
  const db = custos.database.db;
  const hasher = options.hasher ?? new PasswordHasher();
  const settings = new PracticeSettings({ db, defaults: policy });
  const sessions = new Sessions({
    db,
    clock,
    policy,
    limits: (practiceId) => settings.sessionLimits(practiceId),
  });
  const blocks = new Blocks({ db, clock });
  const accounts = new Accounts({ db, keyring: custos.keyring, hasher, sessions, policy, clock });
  const login = new Login({ db, keyring: custos.keyring, hasher, sessions, blocks, policy, clock });
  const passkeys = new Passkeys({ db, clock, sessions, blocks, policy, ...options.passkeys });
  const reviews = new AccessReviews({ db, accounts, settings, clock });
  const breakGlass = new BreakGlassReviews({ db, keyring: custos.keyring, settings, clock });
  const { allowPrivateAddresses = false, ...webhookOptions } = options.webhooks ?? {};
  const receivers = { allowPrivateAddresses };
  const integrations = new Integrations({
    db,
    keyring: custos.keyring,
    clock,
    receivers,
    stepUpMs: policy.stepUpMs,
  });
  const webhooks = new Webhooks({
    db,
    keyring: custos.keyring,
    chart: custos.chart,
    clock,
    receivers,
    ...webhookOptions,
  });
  // Committed appointment changes reach the webhook dispatcher (which records each disclosure).
  const appointmentEvents = new AppointmentEvents((e, event) =>
    webhookOptions.log?.(
      `custos: an appointment listener failed for appointment ${event.appointmentId} (${(e as Error).name})`,
    ),
  );
  appointmentEvents.subscribe(webhooks.listener);
  return {
    custos,
    clock,
    policy,
    hasher,
    sessions,
    settings,
    blocks,
    accounts,
    login,
    passkeys,
    reviews,
    breakGlass,
    appointmentEvents,
    integrations,
    webhooks,
    codes: options.codes ?? CodeList.load(),
    notices: new MessageNotices({
      chart: custos.chart,
      db,
      mailer: options.mail?.mailer,
      portalUrl: options.mail?.portalUrl ?? 'https://localhost:8444',
      ...(options.mail?.log ? { log: options.mail.log } : {}),
    }),
  };
}
