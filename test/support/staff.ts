import { randomUUID } from 'node:crypto';
import { systemContext } from '../../src/access/context.ts';
import { totpAt } from '../../src/identity/totp.ts';
import type { Client, TestServer } from './http.ts';

export const PASSWORD = 'correct horse battery staple 42';

export interface Staff {
  readonly id: string;
  readonly username: string;
  readonly secret: string;
  readonly recoveryCodes: string[];
}

/** Creates an account (as the operator would with `custos user add`) and enrolls it over HTTP. */
export async function enrollStaff(
  server: TestServer,
  client: Client,
  username: string,
  roles: string[] = ['clinician'],
): Promise<Staff> {
  const ctx = systemContext({
    practiceId: server.custos.practiceId,
    purpose: 'operations',
    requestId: randomUUID(),
  });
  const { userId, token } = await server.services.accounts.add(ctx, { username, roles });
  const pw = await client.post('/api/v1/enroll/password', { token, password: PASSWORD });
  if (pw.status !== 204) {
    throw new Error(`enroll password: ${pw.status} ${pw.text}`);
  }
  const totp = await client.post('/api/v1/enroll/totp', { token });
  const secret = (totp.body as { secret: string }).secret;
  const confirm = await client.post('/api/v1/enroll/confirm', {
    token,
    code: totpAt(secret, server.clock.now()),
  });
  if (confirm.status !== 200) {
    throw new Error(`enroll confirm: ${confirm.status} ${confirm.text}`);
  }
  // The confirming code's step is used; later logins need a later step.
  server.clock.advance(30_000);
  return {
    id: userId,
    username,
    secret,
    recoveryCodes: (confirm.body as { recoveryCodes: string[] }).recoveryCodes,
  };
}

/** Logs in with password and the current TOTP code; moves the clock one step so codes never repeat. */
export async function logIn(
  server: TestServer,
  client: Client,
  staff: Staff,
  password = PASSWORD,
): Promise<void> {
  const r1 = await client.post('/api/v1/auth/login', { username: staff.username, password });
  if (r1.status !== 200) {
    throw new Error(`login: ${r1.status} ${r1.text}`);
  }
  const r2 = await client.post('/api/v1/auth/second-factor', {
    code: totpAt(staff.secret, server.clock.now()),
  });
  if (r2.status !== 200) {
    throw new Error(`second factor: ${r2.status} ${r2.text}`);
  }
  server.clock.advance(30_000);
}

/** A step-up: re-authenticates with password and the current TOTP code, then moves the clock one step. */
export async function reauth(server: TestServer, client: Client, staff: Staff): Promise<void> {
  const r = await client.post('/api/v1/auth/reauth', {
    password: PASSWORD,
    code: totpAt(staff.secret, server.clock.now()),
  });
  if (r.status !== 204) {
    throw new Error(`reauth: ${r.status} ${r.text}`);
  }
  server.clock.advance(30_000);
}
