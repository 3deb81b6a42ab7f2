import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { type AccessContext, accessContext, systemContext } from '../../src/access/context.ts';
import type { NewRecord, PatientIdentity } from '../../src/chart/model.ts';
import type { CoreDb } from '../../src/db/schema.ts';

/** Synthetic patients and contexts for tests. Nothing here is, or resembles, a real person. */
export function identity(overrides: Partial<PatientIdentity> = {}): PatientIdentity {
  return {
    name: { given: ['Testa'], family: 'Synthetica', preferred: 'Tess' },
    birthDate: '1984-05-06',
    sex: 'female',
    address: { lines: ['1 Example Lane'], city: 'Sampletown', postalCode: '99999', country: 'NL' },
    phone: '+31 6 0000 0001',
    email: 'testa@example.org',
    identifiers: [
      { type: 'mrn', value: 'MRN-00000001' },
      { type: 'national', system: 'http://hl7.org/fhir/sid/us-ssn', value: '900-00-0001' },
    ],
    ...overrides,
  };
}

export const note = (body = 'Synthetic note body.'): NewRecord<'note'> => ({
  kind: 'note',
  body: { body, date: '2026-01-02T10:00:00Z' },
});

export const condition = (): NewRecord<'condition'> => ({
  kind: 'condition',
  body: {
    code: { system: 'http://hl7.org/fhir/sid/icd-10', code: 'J45.909', display: 'Asthma' },
    clinicalStatus: 'active',
    onset: '2020-03-01',
  },
});

export const system = (practiceId: string): AccessContext =>
  systemContext({ practiceId, purpose: 'import', requestId: `req-${randomUUID()}` });

export const user = (practiceId: string, id: string, role = 'clinician'): AccessContext =>
  accessContext({
    actor: { kind: 'user', id },
    role,
    practiceId,
    purpose: 'treatment',
    sessionId: `sess-${id}`,
    clientAddress: '127.0.0.1',
    requestId: `req-${randomUUID()}`,
  });

/** An active staff account row (no credentials): enough for care teams and policy tests. */
export async function staffRow(
  db: Kysely<CoreDb>,
  practiceId: string,
  username: string,
  roles: readonly string[],
  createdAt = new Date(),
): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('users')
    .values({
      id,
      practice_id: practiceId,
      username,
      roles: [...roles],
      status: 'active',
      password_hash: null,
      password_changed_at: null,
      totp_secret: null,
      totp_last_step: null,
      locked_until: null,
      last_login_at: null,
      created_at: createdAt,
    })
    .execute();
  return id;
}
